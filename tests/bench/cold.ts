/**
 * Cold start of every function: a fresh process imports the function's module, answers one request that
 * is refused (a valid token of a user the database does not have: the token check and the account lookup,
 * a connection included; a bad signature; a missing secret), and exits. Wall time from spawn to exit and
 * the process's peak RSS, against a hello-world module in the same rounds; and the wall time of the same
 * request answered over HTTP by `Deno.serve` (as deployed), against hello-world served the same way.
 */
import { signAccessToken } from "../support/auth.ts";
import { childEnv, median, repoRoot } from "./support.ts";

export interface ColdStart {
  readonly wallMs: number;
  /** The same, the request answered over HTTP by Deno.serve (see cold-start.ts). */
  readonly servedWallMs: number;
  readonly importMs: number;
  readonly peakRssMiB: number;
  readonly status: number;
}

interface RequestSpec {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/**
 * What the packages every function needs cost on their own, measured like the functions (not targets): the
 * floor under any function that loads them at boot, or whose first request reaches the database.
 */
export const packageFloors: Record<string, string> = {
  "floor: postgres.js": "tests/bench/floors/postgres.ts",
  "floor: zod": "tests/bench/floors/zod.ts",
  "floor: postgres.js + zod": "tests/bench/floors/postgres-zod.ts",
  "floor: postgres.js + a query": "tests/bench/floors/postgres-query.ts",
};

async function requestFor(name: string): Promise<RequestSpec> {
  const path = `/functions/v1/${name}`;
  if (name === "hello" || name in packageFloors) return { method: "GET", path, headers: {} };
  if (name === "webhook") {
    return {
      method: "POST",
      path,
      headers: {
        "content-type": "application/json",
        "webhook-id": "msg_cold_start",
        "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
        "webhook-signature": "v1,bm90IGEgcmVhbCBzaWduYXR1cmUgYXQgYWxsISE=",
      },
      body: JSON.stringify({ type: "Transaction.Paid", timestamp: new Date().toISOString(), data: {} }),
    };
  }
  if (name === "reconcile") return { method: "POST", path, headers: {}, body: "{}" };
  const token = await signAccessToken(crypto.randomUUID());
  return {
    method: "POST",
    path,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: "{}",
  };
}

async function once(
  root: string,
  modulePath: string,
  request: RequestSpec,
  env: Record<string, string>,
  served: boolean,
): Promise<Omit<ColdStart, "servedWallMs">> {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "tests/bench/cold-start.ts",
      modulePath,
      JSON.stringify(request),
      ...(served ? ["served"] : []),
    ],
    cwd: root,
    env: childEnv(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wallMs = performance.now() - started;
  const text = new TextDecoder().decode(output.stdout);
  const line = text.split("\n").find((l) => l.startsWith('{"importMs"'));
  if (!output.success || !line) {
    throw new Error(`cold start of ${modulePath} failed: ${text}${new TextDecoder().decode(output.stderr)}`);
  }
  const parsed = JSON.parse(line) as { importMs: number; status: number; peakRssKiB: number };
  return { wallMs, importMs: parsed.importMs, peakRssMiB: parsed.peakRssKiB / 1024, status: parsed.status };
}

/**
 * Every function in supabase/functions plus `hello`, `rounds` times interleaved; medians per function. With
 * a baseline tree, its functions run interleaved with ours and come back under `baseline:<name>`.
 */
export async function measureColdStarts(
  env: Record<string, string>,
  rounds = 5,
  baselineRoot?: string,
): Promise<Record<string, ColdStart>> {
  const names = ["hello"];
  for (const entry of Deno.readDirSync(`${repoRoot}supabase/functions`)) {
    if (entry.isDirectory && !entry.name.startsWith("_")) names.push(entry.name);
  }
  names.sort((a, b) => (a === "hello" ? -1 : b === "hello" ? 1 : a.localeCompare(b)));
  names.splice(1, 0, ...Object.keys(packageFloors));
  const runs: { key: string; root: string; name: string }[] = [];
  for (const name of names) {
    runs.push({ key: name, root: repoRoot, name });
    if (baselineRoot && name !== "hello" && !(name in packageFloors)) {
      runs.push({ key: `baseline:${name}`, root: baselineRoot, name });
    }
  }
  const samples = new Map<string, Omit<ColdStart, "servedWallMs">[]>(runs.map((run) => [run.key, []]));
  const served = new Map<string, number[]>(runs.map((run) => [run.key, []]));
  for (let round = 0; round < rounds; round++) {
    for (const run of runs) {
      const modulePath = run.name === "hello"
        ? "tests/bench/hello.ts"
        : packageFloors[run.name] ?? `supabase/functions/${run.name}/index.ts`;
      samples.get(run.key)!.push(await once(run.root, modulePath, await requestFor(run.name), env, false));
      served.get(run.key)!.push(
        (await once(run.root, modulePath, await requestFor(run.name), env, true)).wallMs,
      );
    }
  }
  const result: Record<string, ColdStart> = {};
  for (const [name, list] of samples) {
    result[name] = {
      wallMs: median(list.map((s) => s.wallMs)),
      servedWallMs: median(served.get(name)!),
      importMs: median(list.map((s) => s.importMs)),
      peakRssMiB: median(list.map((s) => s.peakRssMiB)),
      status: list[0]!.status,
    };
  }
  return result;
}
