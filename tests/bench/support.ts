/** Shared pieces of the bench: the functions' environment, signed deliveries, child processes, statistics. */
import { testEnv } from "../support/app.ts";
import { StandardWebhook } from "../support/deps.ts";
import type { Sandbox } from "../sandbox/sandbox.ts";

export const repoRoot = new URL("../../", import.meta.url).pathname;

/**
 * A deployed function's environment: the platform's SUPABASE_DB_URL (a direct connection, as Supabase
 * injects it) instead of the tests' DATABASE_URL override, one connection per isolate, and the defaults.
 */
export function functionEnv(sandbox: Sandbox, databaseUrl: string): Record<string, string> {
  const env: Record<string, string> = { ...testEnv(sandbox), SUPABASE_DB_URL: databaseUrl, DB_POOL_MAX: "1" };
  delete env.DATABASE_URL;
  // the deployed default (auto), not the test suite's explicit choice
  delete env.DB_PREPARE;
  return env;
}

/** The environment of a child process: only what Deno needs plus `env` (nothing leaks from ours). */
export function childEnv(env: Record<string, string>): Record<string, string> {
  const keep: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) keep[name] = value;
  }
  return { ...keep, ...env };
}

export interface Delivery {
  readonly headers: Record<string, string>;
  readonly body: string;
}

let deliveryCounter = 0;

/** A `Transaction.Paid` delivery for a payment, signed now as PortOne signs it, with a fresh webhook-id. */
export function signedDelivery(sandbox: Sandbox, paymentId: string, signer: StandardWebhook): Delivery {
  const webhookId = `msg_bench_${++deliveryCounter}_${crypto.randomUUID().slice(0, 8)}`;
  const now = new Date();
  const body = JSON.stringify({
    type: "Transaction.Paid",
    timestamp: now.toISOString(),
    data: { paymentId, storeId: sandbox.storeId, transactionId: `tx-${paymentId}` },
  });
  return {
    body,
    headers: {
      "content-type": "application/json",
      "webhook-id": webhookId,
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": signer.sign(webhookId, now, body),
    },
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A server process started by the bench (tests/bench/serve.ts), drained and stopped by it. */
export interface ServerProcess {
  readonly mode: string;
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

async function drain(stream: ReadableStream<Uint8Array>, tail: string[]): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    tail.push(decoder.decode(chunk, { stream: true }));
    if (tail.length > 20) tail.shift();
  }
}

/** Starts tests/bench/serve.ts of the tree at `root` (this one, or a baseline checkout to compare with). */
export async function startServer(
  mode: string,
  env: Record<string, string>,
  root = repoRoot,
): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "tests/bench/serve.ts", mode],
    cwd: root,
    env: childEnv(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errTail: string[] = [];
  const stderrDone = drain(child.stderr, errTail);
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let port: number | undefined;
  const deadline = Date.now() + 60_000;
  while (port === undefined) {
    if (Date.now() > deadline) throw new Error(`server ${mode} did not start: ${errTail.join("")}`);
    const { done, value } = await reader.read();
    if (done) throw new Error(`server ${mode} exited before listening: ${errTail.join("")}`);
    text += decoder.decode(value, { stream: true });
    const line = /^\{"port":(\d+)\}$/m.exec(text);
    if (line) port = Number(line[1]);
  }
  reader.releaseLock();
  // the function's own request log lines: read and dropped, so its stdout never blocks
  const stdoutDone = drain(child.stdout, []);
  return {
    mode,
    url: `http://127.0.0.1:${port}/functions/v1/webhook`,
    pid: child.pid,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
      await Promise.allSettled([stdoutDone, stderrDone]);
    },
  };
}
