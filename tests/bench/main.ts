/**
 * `deno task bench`: the performance figures of issue #14, each as a ratio measured in the same run.
 *
 * Starts what it needs — a throwaway PostgreSQL cluster with production durability (fsync,
 * synchronous_commit and full_page_writes on), the Supabase bootstrap and our migrations, the PortOne
 * sandbox, proxies in front of PostgreSQL — then measures:
 *
 * 1. wire cost per operation (statements, transactions, Parse messages, round trips), counted by a proxy
 *    that reads the PostgreSQL protocol;
 * 2. webhook deliveries/s and p50/p99 of one function process at c = 1/16/64 against a verify-only and a
 *    floor handler, directly and through a proxy adding ≈1 ms each way;
 * 3. peak RSS of one webhook process under c=16 load vs a hello-world server;
 * 4. cold start and peak memory of every function vs a hello-world module;
 * 5. whether a function's connection survives an idle spell of 60 s (the old setting closed it after 20 s).
 *
 * Prints one table and writes it as JSON to .artifacts/bench-latest.json. Loopback only; every loop is
 * bounded; a few minutes in all.
 */
import { startCluster } from "../support/postgres-cluster.ts";
import { applyBootstrap, pushMigrations, runSql, withDatabase } from "../support/database.ts";
import { postgres } from "../../shared/infra/deps.ts";
import { startTestApp } from "../support/app.ts";
import { StandardWebhook } from "../support/deps.ts";
import { startPgProxy } from "./pg-proxy.ts";
import { operationCounter, type OperationCounts, operations, roundTripTargets } from "./operations.ts";
import { type CellResult, createPaidPayments, emptySamples, runCell, summarize } from "./load.ts";
import { type ColdStart, measureColdStarts, packageFloors } from "./cold.ts";
import {
  type Delivery,
  functionEnv,
  repoRoot,
  type ServerProcess,
  signedDelivery,
  sleep,
  startServer,
} from "./support.ts";
import { peakRssKiB } from "./proc.ts";

const concurrencies = [1, 16, 64] as const;
/** Each cell runs `cellRounds` times for `cellMs`, interleaved with the other handlers' cells at that c. */
const cellMs = 800;
const cellRounds = 3;
const addedLatencyMs = 1;
const idleSeconds = 60;
const encoder = new TextEncoder();
const say = (line = "") => Deno.stdout.writeSync(encoder.encode(`${line}\n`));
const progress = (line: string) => Deno.stderr.writeSync(encoder.encode(`bench: ${line}\n`));

interface LoadRow {
  readonly latencyMs: number;
  readonly concurrency: number;
  readonly verify: CellResult;
  readonly floor: CellResult;
  readonly webhook: CellResult;
  /** The baseline tree's floor and webhook, measured interleaved with ours (with --baseline). */
  readonly baseline?: { readonly floor: CellResult; readonly webhook: CellResult };
}

/** `--baseline <dir>`: another checkout (e.g. main with this harness) measured in the same run. */
function baselineRoot(): string | undefined {
  const index = Deno.args.indexOf("--baseline");
  if (index < 0) return undefined;
  const dir = Deno.args[index + 1];
  if (!dir) throw new Error("--baseline needs a directory (a checkout that has tests/bench/serve.ts)");
  const root = new URL(dir.endsWith("/") ? dir : `${dir}/`, `file://${Deno.cwd()}/`).pathname;
  Deno.statSync(`${root}tests/bench/serve.ts`);
  return root;
}

async function roundTripMs(url: string): Promise<number> {
  const sql = postgres(url, { max: 1, prepare: true, onnotice: () => {} });
  try {
    await sql`select 1`;
    const started = performance.now();
    for (let i = 0; i < 50; i++) await sql`select ${i}::int`;
    return (performance.now() - started) / 50;
  } finally {
    await sql.end();
  }
}

async function gitDescribe(): Promise<string> {
  const out = await new Deno.Command("git", {
    args: ["rev-parse", "--short", "HEAD"],
    cwd: repoRoot,
    stdout: "piped",
  })
    .output().catch(() => null);
  const sha = out?.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
  const dirty = await new Deno.Command("git", {
    args: ["status", "--porcelain"],
    cwd: repoRoot,
    stdout: "piped",
  })
    .output().catch(() => null);
  return dirty?.success && new TextDecoder().decode(dirty.stdout).trim() ? `${sha}+changes` : sha;
}

async function main(): Promise<void> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => {});
  };
  const onSignal = () => void cleanup().finally(() => Deno.exit(130));
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const runStarted = performance.now();
  const baseline = baselineRoot();
  try {
    progress("starting PostgreSQL (fsync, synchronous_commit, full_page_writes on)");
    const cluster = await startCluster({ productionDurability: true });
    cleanups.push(cluster.stop);
    const app = new URL(withDatabase(cluster.adminUrl, "postgres"));
    app.username = "postgres";
    app.password = "postgres";
    const appUrl = app.toString();
    await applyBootstrap(cluster.adminUrl);
    progress("supabase db push");
    await pushMigrations(appUrl);
    await runSql(
      cluster.adminUrl,
      `create schema bench;
       create table bench.floor_events (webhook_id text primary key, payment_id text not null, status text not null,
                                        received_at timestamptz not null default now());
       grant usage on schema bench to postgres;
       grant insert, select on bench.floor_events to postgres;`,
    );
    Deno.env.set("DATABASE_URL", appUrl);
    Deno.env.set("TEST_ADMIN_DATABASE_URL", cluster.adminUrl);

    const testApp = await startTestApp();
    cleanups.push(() => testApp.close());
    const counting = startPgProxy(appUrl, { count: true });
    cleanups.push(counting.close);
    const delayed = startPgProxy(appUrl, { delayMs: addedLatencyMs });
    cleanups.push(delayed.close);

    // 1. wire cost per operation
    progress("counting wire round trips per operation");
    const counter = await operationCounter(testApp, counting);
    cleanups.push(counter.close);
    const wire = await counter.countAll();
    // the counted connection now idles; one more request on it once the spell is over (during the load)
    const idleCheck = sleep(idleSeconds * 1000).then(() => counter.countConfirmAgain());
    idleCheck.catch(() => {}); // awaited (and rethrown) below

    // 2.–3. load
    const directRttMs = await roundTripMs(appUrl);
    const delayedRttMs = await roundTripMs(delayed.url);
    // enough for every cell at ≈600 deliveries/s (twice as many when a baseline shares them)
    const pool: string[] = await createPaidPayments(testApp, baseline ? 16_000 : 8_000);
    const anyPayment = [...pool];
    const signer = new StandardWebhook(testApp.sandbox.webhookSecret);
    let anyIndex = 0;
    const nextAny = (): Delivery =>
      signedDelivery(testApp.sandbox, anyPayment[anyIndex++ % anyPayment.length]!, signer);
    const nextFresh = (): Delivery | undefined => {
      const paymentId = pool.pop();
      return paymentId === undefined ? undefined : signedDelivery(testApp.sandbox, paymentId, signer);
    };
    const load: LoadRow[] = [];
    let webhookRssMiB = NaN;
    let floorRssMiB = NaN;
    let helloRssMiB = NaN;
    let helloC16: CellResult | undefined;
    for (const latencyMs of [0, addedLatencyMs]) {
      const env = functionEnv(testApp.sandbox, latencyMs === 0 ? appUrl : delayed.url);
      const servers: Record<string, ServerProcess> = {};
      for (const mode of ["verify", "floor", "webhook", ...(latencyMs === 0 ? ["hello"] : [])]) {
        servers[mode] = await startServer(mode, env);
        cleanups.push(servers[mode]!.stop);
      }
      if (baseline) {
        for (const mode of ["floor", "webhook"]) {
          servers[`baseline-${mode}`] = await startServer(mode, env, baseline);
          cleanups.push(servers[`baseline-${mode}`]!.stop);
        }
      }
      for (const concurrency of concurrencies) {
        progress(`webhook load: +${latencyMs} ms, c=${concurrency}`);
        const samples = {
          verify: emptySamples(),
          floor: emptySamples(),
          webhook: emptySamples(),
          baselineFloor: emptySamples(),
          baselineWebhook: emptySamples(),
        };
        for (let round = 0; round < cellRounds; round++) {
          await runCell(samples.verify, servers.verify!.url, concurrency, cellMs, nextAny);
          await runCell(samples.floor, servers.floor!.url, concurrency, cellMs, nextAny);
          await runCell(samples.webhook, servers.webhook!.url, concurrency, cellMs, nextFresh);
          if (baseline) {
            await runCell(
              samples.baselineFloor,
              servers["baseline-floor"]!.url,
              concurrency,
              cellMs,
              nextAny,
            );
            await runCell(
              samples.baselineWebhook,
              servers["baseline-webhook"]!.url,
              concurrency,
              cellMs,
              nextFresh,
            );
          }
        }
        load.push({
          latencyMs,
          concurrency,
          verify: summarize(samples.verify),
          floor: summarize(samples.floor),
          webhook: summarize(samples.webhook),
          ...(baseline
            ? {
              baseline: {
                floor: summarize(samples.baselineFloor),
                webhook: summarize(samples.baselineWebhook),
              },
            }
            : {}),
        });
        if (latencyMs === 0 && concurrency === 16) {
          webhookRssMiB = peakRssKiB(servers.webhook!.pid) / 1024;
          // the floor served the same deliveries at c=1 and c=16: what its work alone costs in memory
          floorRssMiB = peakRssKiB(servers.floor!.pid) / 1024;
          const helloSamples = emptySamples();
          await runCell(helloSamples, servers.hello!.url, 16, cellMs * cellRounds, nextAny);
          helloC16 = summarize(helloSamples);
          helloRssMiB = peakRssKiB(servers.hello!.pid) / 1024;
        }
      }
      for (const server of Object.values(servers)) await server.stop();
    }

    // 4. cold start
    progress("cold starts");
    const cold = await measureColdStarts(functionEnv(testApp.sandbox, appUrl), 5, baseline);

    // 5. idle
    const afterIdle = await idleCheck;

    const result = {
      at: new Date().toISOString(),
      commit: await gitDescribe(),
      baseline: baseline ?? null,
      cpus: navigator.hardwareConcurrency,
      durability: "fsync=on synchronous_commit=on full_page_writes=on",
      directRttMs,
      delayedRttMs,
      wire,
      load,
      helloC16,
      webhookRssMiB,
      floorRssMiB,
      helloRssMiB,
      cold,
      idle: {
        seconds: idleSeconds,
        reconnected: afterIdle.connections > 0,
      },
      runSeconds: Math.round((performance.now() - runStarted) / 1000),
    };
    await Deno.mkdir(`${repoRoot}.artifacts`, { recursive: true });
    await Deno.writeTextFile(
      `${repoRoot}.artifacts/bench-latest.json`,
      JSON.stringify(result, null, 2) + "\n",
    );
    report(result);
  } finally {
    await cleanup();
  }
}

const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : "-");
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "-");
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "-");
const mark = (ok: boolean) => (ok ? "met" : "NOT met");

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  say(line(header));
  say(`|${widths.map((w, i) => (i === 0 ? ":" : "") + "-".repeat(w + 1) + (i === 0 ? "" : ":")).join("|")}|`);
  for (const row of rows) say(line(row));
}

function report(r: {
  at: string;
  commit: string;
  baseline: string | null;
  cpus: number;
  directRttMs: number;
  delayedRttMs: number;
  wire: OperationCounts;
  load: LoadRow[];
  helloC16: CellResult | undefined;
  webhookRssMiB: number;
  floorRssMiB: number;
  helloRssMiB: number;
  cold: Record<string, ColdStart>;
  idle: { seconds: number; reconnected: boolean };
  runSeconds: number;
}): void {
  const targets: [string, boolean][] = [];
  say(`deno task bench — ${r.at}, commit ${r.commit}, ${r.cpus} CPUs, ${r.runSeconds} s`);
  if (r.baseline) say(`Baseline (measured interleaved in this run): ${r.baseline}`);
  say(
    "PostgreSQL 15 with fsync, synchronous_commit, full_page_writes on; one function process, DB_POOL_MAX=1.",
  );
  say(`Added-latency proxy: ${f2(r.delayedRttMs)} ms per round trip (direct ${f2(r.directRttMs)} ms).`);
  say();
  say(
    "Wire cost per request, counted at the PostgreSQL protocol (warm: open connection, statements prepared;",
  );
  say(
    "new connection: a new isolate's first request — startup and statement preparation included, on loopback",
  );
  say(
    "without TLS or a password; transactions: explicit ones plus autocommit statements, each a durable commit):",
  );
  table(
    [
      "operation",
      "statements",
      "transactions",
      "Parse msgs",
      "round trips",
      "target",
      "new connection: Parse msgs",
      "round trips",
    ],
    operations.map((op) => {
      const c = r.wire.warm[op];
      const cold = r.wire.cold[op];
      const target = roundTripTargets[op];
      if (target !== undefined) {
        targets.push([`${op}: round trips ${c.roundTrips} ≤ ${target}`, c.roundTrips <= target]);
      }
      return [
        op,
        String(c.statements),
        String(c.transactions),
        String(c.parses),
        String(c.roundTrips),
        target === undefined ? "" : `≤ ${target}`,
        String(cold.parses),
        String(cold.roundTrips),
      ];
    }),
  );
  say();
  say(
    `Webhook deliveries/s (p50/p99 ms); ${cellRounds}×${
      cellMs / 1000
    } s per cell, interleaved; each webhook` +
      " delivery applies a payment:",
  );
  const cell = (c: CellResult) =>
    `${f0(c.perSecond)} (${f1(c.p50Ms)}/${f1(c.p99Ms)})${c.failures ? ` ${c.failures} failed` : ""}${
      c.exhausted ? " *" : ""
    }`;
  table(
    [
      "db latency",
      "c",
      "verify-only",
      "floor",
      "webhook",
      "webhook/floor",
      "webhook p99/p50",
      ...(r.baseline ? ["baseline floor", "baseline webhook", "baseline webhook/floor"] : []),
    ],
    r.load.map((row) => {
      const ratio = row.webhook.perSecond / row.floor.perSecond;
      const tail = row.webhook.p99Ms / row.webhook.p50Ms;
      if (row.concurrency === 16) {
        const need = row.latencyMs === 0 ? 0.8 : 0.7;
        targets.push([`webhook/floor at c=16, +${row.latencyMs} ms: ${f2(ratio)} ≥ ${need}`, ratio >= need]);
        targets.push([`webhook p99/p50 at c=16, +${row.latencyMs} ms: ${f1(tail)} ≤ 3`, tail <= 3]);
      }
      const base = row.baseline;
      return [
        `+${row.latencyMs} ms`,
        String(row.concurrency),
        cell(row.verify),
        cell(row.floor),
        cell(row.webhook),
        `${f2(ratio)}×`,
        `${f1(tail)}×`,
        ...(base
          ? [cell(base.floor), cell(base.webhook), `${f2(base.webhook.perSecond / base.floor.perSecond)}×`]
          : []),
      ];
    }),
  );
  if (r.load.some((row) => row.webhook.exhausted || row.baseline?.webhook.exhausted)) {
    say("* ran out of fresh payments before the time was up");
  }
  say();
  const rssRatio = r.webhookRssMiB / r.helloRssMiB;
  targets.push([`webhook peak RSS under c=16: ${f2(rssRatio)}× hello ≤ 2.5`, rssRatio <= 2.5]);
  say(
    `Peak RSS under c=16 load: webhook ${f0(r.webhookRssMiB)} MiB, floor ${f0(r.floorRssMiB)} MiB ` +
      `(${f2(r.floorRssMiB / r.helloRssMiB)}× hello), hello-world server ${f0(r.helloRssMiB)} MiB` +
      ` (${f2(rssRatio)}×; hello served ${f0(r.helloC16?.perSecond ?? NaN)}/s).`,
  );
  say();
  say("Cold start (fresh process: import, one request, exit; median of 5) and peak memory; served: the same");
  say(
    "request over HTTP through Deno.serve, as a deployed function answers it (not a target, for comparison).",
  );
  say("The floor rows are modules that only load the packages every function needs (not targets):");
  const hello = r.cold.hello!;
  table(
    [
      "function",
      "wall ms",
      "× hello",
      "import ms",
      "peak RSS MiB",
      "× hello",
      "status",
      "served wall ms",
      "× hello",
      ...(r.baseline ? ["baseline wall ms", "× hello", "baseline RSS MiB", "× hello"] : []),
    ],
    Object.entries(r.cold).filter(([name]) => !name.startsWith("baseline:")).map(([name, c]) => {
      const wallRatio = c.wallMs / hello.wallMs;
      const rss = c.peakRssMiB / hello.peakRssMiB;
      if (name !== "hello" && !(name in packageFloors)) {
        targets.push([`${name} cold start ${f2(wallRatio)}× ≤ 3.0`, wallRatio <= 3]);
        targets.push([`${name} peak memory ${f2(rss)}× ≤ 1.8`, rss <= 1.8]);
      }
      const base = r.cold[`baseline:${name}`];
      return [
        name,
        f0(c.wallMs),
        f2(wallRatio),
        f0(c.importMs),
        f0(c.peakRssMiB),
        f2(rss),
        String(c.status),
        f0(c.servedWallMs),
        f2(c.servedWallMs / hello.servedWallMs),
        ...(r.baseline
          ? base
            ? [
              f0(base.wallMs),
              f2(base.wallMs / hello.wallMs),
              f0(base.peakRssMiB),
              f2(base.peakRssMiB / hello.peakRssMiB),
            ]
            : ["", "", "", ""]
          : []),
      ];
    }),
  );
  say();
  say(
    `Idle: after ${r.idle.seconds} s without a query the next request ${
      r.idle.reconnected ? "reconnected" : "reused the connection"
    }.`,
  );
  targets.push([`no reconnect after ${r.idle.seconds} s idle`, !r.idle.reconnected]);
  say();
  say("Targets:");
  for (const [text, ok] of targets) say(`- ${mark(ok)}: ${text}`);
}

await main();
Deno.exit(0);
