/**
 * A PostgreSQL cluster of one test's own, with the suite's schema, that the test may restart: the suite's
 * shared cluster serves every test file in parallel and must never go away under them.
 *
 * The schema (roles included) is copied from the suite's database with pg_dumpall/pg_dump, so it is exactly
 * what the migrations built there.
 */
import { type Cluster, startCluster } from "./postgres-cluster.ts";

export interface RestartableDatabase extends AsyncDisposable {
  /** The app's connection URL (role `postgres`, as functions connect). */
  readonly appUrl: string;
  /**
   * Stops the server and starts it again: `fast` ends sessions cleanly, `immediate` kills the server like a
   * crash (durable settings, so every acknowledged commit survives either way).
   */
  restart(mode: "fast" | "immediate"): Promise<void>;
}

async function run(cmd: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const result = await child.output();
  const text = new TextDecoder().decode(result.stdout);
  if (!result.success) {
    throw new Error(`${cmd} failed: ${new TextDecoder().decode(result.stderr).slice(-2000)}`);
  }
  return text;
}

export async function restartableDatabase(): Promise<RestartableDatabase> {
  const source = Deno.env.get("TEST_ADMIN_DATABASE_URL");
  if (!source) throw new Error("TEST_ADMIN_DATABASE_URL is not set: run the tests with `deno task test`");
  const cluster: Cluster = await startCluster({ productionDurability: true });
  try {
    const roles = (await run("pg_dumpall", ["--roles-only", "--no-role-passwords", "-d", source]))
      .split("\n")
      // the target's own superuser exists already
      .filter((line) => !/^(CREATE|ALTER) ROLE supabase_admin\b/.test(line))
      .join("\n");
    const schema = await run("pg_dump", ["--schema-only", "--no-publications", "--no-subscriptions", source]);
    await run("psql", ["-q", "-v", "ON_ERROR_STOP=0", "-d", cluster.adminUrl], roles);
    await run("psql", ["-q", "-v", "ON_ERROR_STOP=1", "-d", cluster.adminUrl], schema);
    await run("psql", [
      "-q",
      "-d",
      cluster.adminUrl,
      "-c",
      "alter role postgres with login password 'postgres'",
    ]);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  const app = new URL(cluster.adminUrl);
  app.username = "postgres";
  app.password = "postgres";
  return {
    appUrl: app.toString(),
    restart: (mode) => cluster.restart(mode),
    [Symbol.asyncDispose]: () => cluster.stop(),
  };
}
