/**
 * Runs `deno task dev`'s entry point as a subprocess on free ports, the way a developer runs it, and stops
 * it with SIGTERM. A subprocess (not in-process) because the functions read their environment at module
 * load: each stack needs its own process.
 */
import { type DevKeys, loadDevKeys } from "./keys.ts";
import type { StackState } from "./stack.ts";

const main = new URL("./main.ts", import.meta.url).pathname;
const tokenScript = new URL("./token.ts", import.meta.url).pathname;

export interface RunningStack extends AsyncDisposable {
  readonly state: StackState;
  readonly keys: DevKeys;
  readonly stateFile: string;
  readonly keyFile: string;
  /** Everything the stack printed so far. */
  output(): string;
  /** `deno task token [--admin] [userId]` against this stack. */
  token(userId?: string, options?: { admin?: boolean }): Promise<string>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number>;
  /** Sends a signal (SIGKILL: a crash no handler sees) without waiting. */
  kill(signal: Deno.Signal): void;
  /** The exit code, once the process has ended. */
  readonly exited: Promise<number>;
}

export interface SpawnOptions {
  readonly env?: Record<string, string>;
  /** Where the state and key files go; kept after the stack stops (default: a temp dir removed then). */
  readonly dir?: string;
  /** The entry point (default: main.ts, as `deno task dev` runs it). */
  readonly entry?: string;
  /** How long start-up may take (default 45 s). */
  readonly readyTimeoutMs?: number;
}

/** The parent's environment minus what would change the stack's mode (the suite sets DATABASE_URL). */
function baseEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (
      /^(DATABASE_URL|TEST_ADMIN_DATABASE_URL|PORT|PORTONE_.*|SUPABASE_.*|SANDBOX_.*|DEVSTACK_.*)$/.test(name)
    ) {
      delete env[name];
    }
  }
  return env;
}

export async function spawnStack(options: SpawnOptions = {}): Promise<RunningStack> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "devstack-test-" });
  const readyTimeoutMs = options.readyTimeoutMs ?? 45_000;
  const stateFile = `${dir}/devstack.json`;
  const keyFile = `${dir}/dev-signing-key.json`;
  const env = {
    ...baseEnv(),
    NO_COLOR: "1",
    PORT: "0",
    SANDBOX_TIME_FACTOR: "1e-5",
    DEVSTACK_STATE_FILE: stateFile,
    DEVSTACK_KEY_FILE: keyFile,
    ...options.env,
  };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", options.entry ?? main],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  let text = "";
  let ready: () => void;
  let failed: (error: Error) => void;
  const readyPromise = new Promise<void>((resolve, reject) => {
    ready = resolve;
    failed = reject;
  });
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      if (text.includes("Ctrl-C stops everything.")) ready();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status;
  status.then((s) => failed(new Error(`the stack exited (code ${s.code}) before it was ready:\n${text}`)));
  const timeout = setTimeout(
    () => failed(new Error(`the stack was not ready within ${readyTimeoutMs / 1000} s:\n${text}`)),
    readyTimeoutMs,
  );

  let stopped: Promise<number> | null = null;
  const stop = () =>
    stopped ??= (async () => {
      clearTimeout(timeout);
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      const { code } = await status;
      await pumps;
      if (!options.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
      return code;
    })();

  try {
    await readyPromise;
  } catch (error) {
    await stop();
    throw error;
  }
  clearTimeout(timeout);
  const state = JSON.parse(await Deno.readTextFile(stateFile)) as StackState;
  const keys = await loadDevKeys(keyFile);
  return {
    state,
    keys,
    stateFile,
    keyFile,
    output: () => text,
    async token(userId, tokenOptions = {}) {
      const result = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          tokenScript,
          ...(tokenOptions.admin ? ["--admin"] : []),
          ...(userId ? [userId] : []),
        ],
        env: { ...baseEnv(), NO_COLOR: "1", DEVSTACK_STATE_FILE: stateFile, DEVSTACK_KEY_FILE: keyFile },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!result.success) throw new Error(`token failed: ${new TextDecoder().decode(result.stderr)}`);
      return new TextDecoder().decode(result.stdout).trim();
    },
    stop,
    kill(signal) {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
    },
    exited: status.then(async (s) => {
      await pumps;
      return s.code;
    }),
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
}

/** Fetches JSON from the sandbox's control API. */
export async function control<T = Record<string, unknown>>(
  state: StackState,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${state.sandbox!.controlUrl}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() as T };
}

/** Whether something accepts TCP connections on the port (to prove a stopped stack left nothing running). */
export async function listening(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}
