/**
 * Turns an empty PostgreSQL database into a Supabase-shaped one: the platform bootstrap, then our
 * migrations applied by the Supabase CLI itself (as a user deploying would), then `supabase db lint`.
 */
import { postgres } from "../../shared/infra/deps.ts";
import { PrerequisiteError } from "./prerequisites.ts";

export const supabaseCliVersion = "2.117.0";
const repoRoot = new URL("../../", import.meta.url).pathname;
const bootstrapSql = new URL("./sql/supabase-bootstrap.sql", import.meta.url);

export interface DatabaseUrls {
  /** A superuser (or the most privileged role we were given): bootstrap, lint, pgTAP, test setup. */
  readonly adminUrl: string;
  /** What functions use (Supabase's `postgres` role on a throwaway cluster): migrations and the app. */
  readonly appUrl: string;
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

function cliUrl(url: string): string {
  const parsed = new URL(url);
  if (!parsed.searchParams.has("sslmode") && ["127.0.0.1", "localhost", "::1"].includes(parsed.hostname)) {
    parsed.searchParams.set("sslmode", "disable");
  }
  return parsed.toString();
}

export async function runSql(url: string, text: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(text);
  } finally {
    await sql.end();
  }
}

/** Fails with one actionable line when the server lacks an extension the suite needs. */
export async function requireExtensions(adminUrl: string, names: Record<string, string>): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ name: string }[]>`select name from pg_available_extensions where name in ${
      sql(Object.keys(names))
    }`;
    const [{ server_version_num: versionNum } = { server_version_num: "150000" }] = await sql<
      { server_version_num: string }[]
    >`select current_setting('server_version_num') as server_version_num`;
    const major = Math.floor(Number(versionNum) / 10000);
    for (const [name, label] of Object.entries(names)) {
      if (!rows.some((row) => row.name === name)) {
        throw new PrerequisiteError(
          `${label} is not installed for PostgreSQL ${major}: install it with \`apt-get install postgresql-${major}-${
            name.replace(/^pg_/, "").replaceAll("_", "-")
          }\``,
        );
      }
    }
  } finally {
    await sql.end();
  }
}

/** Creates a scratch database on an existing server so a run never touches the server's own data. */
export async function createScratchDatabase(
  serverUrl: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `payments_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  await runSql(serverUrl, `create database ${name}`);
  return {
    url: withDatabase(serverUrl, name),
    drop: () => runSql(serverUrl, `drop database if exists ${name} with (force)`),
  };
}

export async function applyBootstrap(adminUrl: string): Promise<void> {
  await runSql(adminUrl, await Deno.readTextFile(bootstrapSql));
}

async function supabaseCli(args: string[]): Promise<string> {
  const result = await new Deno.Command("npx", {
    args: ["-y", `supabase@${supabaseCliVersion}`, ...args],
    cwd: repoRoot,
    stdout: "piped",
    stderr: "piped",
    env: { DO_NOT_TRACK: "1", SUPABASE_TELEMETRY_DISABLED: "1" },
  }).output().catch((error) => {
    throw new PrerequisiteError(`npx is needed to run the Supabase CLI (install Node.js and npm): ${error}`);
  });
  const text = new TextDecoder().decode(result.stdout) + new TextDecoder().decode(result.stderr);
  if (!result.success) throw new Error(`supabase ${args.slice(0, 2).join(" ")} failed:\n${text.trim()}`);
  return text;
}

/** `supabase db push`: applies supabase/migrations exactly as a deploy does. */
export async function pushMigrations(appUrl: string): Promise<string> {
  return await supabaseCli(["db", "push", "--db-url", cliUrl(appUrl), "--include-all", "--yes"]);
}

/** `supabase db lint` (plpgsql_check) over our schemas; fails on errors. */
export async function lintDatabase(adminUrl: string): Promise<string> {
  return await supabaseCli([
    "db",
    "lint",
    "--db-url",
    cliUrl(adminUrl),
    "--schema",
    "public,private",
    "--level",
    "warning",
    "--fail-on",
    "error",
  ]);
}
