/**
 * `deno task test`: the whole suite against a real PostgreSQL.
 *
 * 1. DATABASE_URL set → a scratch database on that server; otherwise a throwaway cluster from the
 *    machine's PostgreSQL binaries (removed afterwards, also on failure or Ctrl-C).
 * 2. The Supabase platform bootstrap, then `supabase db push` and `supabase db lint` (the real CLI).
 * 3. pgTAP files with pg_prove, then the Deno tests.
 * 4. A last line `suite: N passed, N failed`; the exit code is non-zero if anything failed.
 *
 * Arguments, if any, name the Deno test files to run instead of all of them (for a quick loop).
 *
 * A missing prerequisite stops the run with one line naming what to install.
 */
import { type Cluster, startCluster } from "./postgres-cluster.ts";
import {
  applyBootstrap,
  createScratchDatabase,
  lintDatabase,
  pushMigrations,
  requireExtensions,
  runSql,
  withDatabase,
} from "./database.ts";
import { PrerequisiteError } from "./prerequisites.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;
const encoder = new TextEncoder();

function say(line: string): void {
  Deno.stdout.writeSync(encoder.encode(`${line}\n`));
}

async function requireCommand(cmd: string, args: string[], install: string): Promise<void> {
  try {
    await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
  } catch {
    throw new PrerequisiteError(`${cmd} not found: ${install}`);
  }
}

/** Runs a command with its output shown live and also returned for parsing. */
async function runTee(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; text: string }> {
  const child = new Deno.Command(cmd, { args, cwd: repoRoot, env, stdout: "piped", stderr: "piped" }).spawn();
  let text = "";
  const pump = async (stream: ReadableStream<Uint8Array>, sink: typeof Deno.stdout) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      await sink.write(chunk);
      text += decoder.decode(chunk, { stream: true });
    }
  };
  await Promise.all([pump(child.stdout, Deno.stdout), pump(child.stderr, Deno.stderr)]);
  const { code } = await child.status;
  return { code, text };
}

interface Counts {
  passed: number;
  failed: number;
}

function pgProveCounts(text: string, code: number): Counts {
  const total = Number(/Tests=(\d+)/.exec(text)?.[1] ?? 0);
  let failed = 0;
  for (const match of text.matchAll(/Failed (\d+)\/\d+ subtests/g)) failed += Number(match[1]);
  // a file that died or planned wrong counts once even when no single assertion failed
  if (code !== 0 && failed === 0) failed = Math.max(1, [...text.matchAll(/^\S+\.sql \(Wstat/gm)].length);
  return { passed: Math.max(total - failed, 0), failed };
}

function denoTestCounts(text: string, code: number): Counts {
  const match = /(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(text);
  const counts = { passed: Number(match?.[1] ?? 0), failed: Number(match?.[2] ?? 0) };
  if (code !== 0 && counts.failed === 0) counts.failed = 1;
  return counts;
}

async function main(): Promise<number> {
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => {});
  };
  const onSignal = () => {
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  const totals: Counts = { passed: 0, failed: 0 };
  try {
    const serverUrl = Deno.env.get("DATABASE_URL");
    await requireCommand(
      "psql",
      ["--version"],
      "install the PostgreSQL client with `apt-get install postgresql-client-15`",
    );
    await requireCommand(
      "pg_prove",
      ["--version"],
      "install it with `apt-get install postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl`",
    );

    let adminUrl: string;
    let appUrl: string;
    if (serverUrl) {
      const scratch = await createScratchDatabase(serverUrl);
      cleanups.push(scratch.drop);
      adminUrl = appUrl = scratch.url;
      say(`database: scratch database on DATABASE_URL's server`);
    } else {
      const cluster: Cluster = await startCluster();
      cleanups.push(cluster.stop);
      adminUrl = cluster.adminUrl;
      const app = new URL(withDatabase(cluster.adminUrl, "postgres"));
      app.username = "postgres";
      app.password = "postgres";
      appUrl = app.toString();
      say(`database: throwaway cluster on 127.0.0.1:${cluster.port}`);
    }
    // the suite's own cluster preloads pg_cron, so the schedules are tested there (a scratch database on
    // DATABASE_URL's server cannot hold pg_cron, which lives in cron.database_name only)
    await requireExtensions(adminUrl, {
      pgtap: "pgTAP",
      plpgsql_check: "plpgsql_check",
      ...(serverUrl ? {} : { pg_cron: "pg_cron" }),
    });

    await applyBootstrap(adminUrl);
    say(await pushMigrations(appUrl));
    // The CLI creates plpgsql_check itself, which needs a superuser; do it here so lint runs as on Supabase.
    await runSql(adminUrl, "create extension if not exists plpgsql_check");
    say(await lintDatabase(adminUrl));

    await runSql(adminUrl, await Deno.readTextFile(new URL("./sql/pgtap-helpers.sql", import.meta.url)));
    const admin = new URL(adminUrl);
    const pgProve = await runTee("pg_prove", [
      "--host",
      admin.hostname,
      "--port",
      admin.port || "5432",
      "--username",
      decodeURIComponent(admin.username),
      "--dbname",
      admin.pathname.slice(1),
      "--ext",
      ".sql",
      "-r",
      "supabase/tests/database/",
    ], {
      // pgTAP lives in `extensions`, as on Supabase
      PGOPTIONS: "-c search_path=public,extensions",
      ...(admin.password ? { PGPASSWORD: decodeURIComponent(admin.password) } : {}),
    });
    const pgtap = pgProveCounts(pgProve.text, pgProve.code);
    say(`pgTAP: ${pgtap.passed} passed, ${pgtap.failed} failed`);

    // tests/fuzz.test.ts compares every table before and after, so it gets a database of its own, migrated
    // the same way (a copy by TEMPLATE is impossible: pg_cron's launcher stays connected to the source)
    const fuzzDatabase = await createScratchDatabase(adminUrl);
    cleanups.push(fuzzDatabase.drop);
    await applyBootstrap(fuzzDatabase.url);
    const fuzzAppUrl = withDatabase(appUrl, new URL(fuzzDatabase.url).pathname.slice(1));
    await pushMigrations(fuzzAppUrl);

    // `deno task test tests/a.test.ts …` runs only those Deno test files (the database steps run as always)
    const denoTest = await runTee(Deno.execPath(), ["test", "--allow-all", "--parallel", ...Deno.args], {
      NO_COLOR: "1",
      DATABASE_URL: appUrl,
      TEST_ADMIN_DATABASE_URL: adminUrl,
      FUZZ_DATABASE_URL: fuzzAppUrl,
      TEST_DATABASE_MODE: serverUrl ? "DATABASE_URL" : "cluster",
    });
    const deno = denoTestCounts(denoTest.text, denoTest.code);
    totals.passed = pgtap.passed + deno.passed;
    totals.failed = pgtap.failed + deno.failed;
  } catch (error) {
    if (error instanceof PrerequisiteError) {
      await cleanup();
      Deno.stderr.writeSync(encoder.encode(`error: ${error.message}\n`));
      return 2;
    }
    Deno.stderr.writeSync(
      encoder.encode(`error: ${error instanceof Error ? error.message : String(error)}\n`),
    );
    totals.failed += 1;
  } finally {
    await cleanup();
  }
  say(`suite: ${totals.passed} passed, ${totals.failed} failed`);
  return totals.failed === 0 ? 0 : 1;
}

Deno.exit(await main());
