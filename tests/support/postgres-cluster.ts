/**
 * Throwaway PostgreSQL clusters from the machine's own server binaries, for the test suite and the local
 * stack: initdb in a temp dir, trust auth, loopback only, a free port, removed again on stop.
 *
 * `initdb` and `postgres` refuse to run as root, and CI runs as root, so as root the cluster is owned and
 * run by the `postgres` system user (the one Debian's server package creates).
 */
import { PrerequisiteError } from "./prerequisites.ts";

export interface Cluster {
  /** Superuser (`supabase_admin`) connection URL. */
  readonly adminUrl: string;
  readonly port: number;
  readonly dataDir: string;
  stop(): Promise<void>;
}

async function output(cmd: string, args: string[]): Promise<string | null> {
  try {
    const result = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return result.success ? new TextDecoder().decode(result.stdout).trim() : null;
  } catch {
    return null;
  }
}

/** The directory holding initdb, pg_ctl and postgres. Debian keeps them off PATH. */
export async function findServerBinDir(): Promise<string> {
  const candidates: string[] = [];
  const fromEnv = Deno.env.get("PG_BINDIR");
  if (fromEnv) candidates.push(fromEnv);
  const fromPgConfig = await output("pg_config", ["--bindir"]);
  if (fromPgConfig) candidates.push(fromPgConfig);
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")]
      .map((entry) => entry.name)
      .filter((name) => /^\d+$/.test(name))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // no Debian layout; the candidates from PATH and env are all we have
  }
  for (const dir of candidates) {
    try {
      Deno.statSync(`${dir}/initdb`);
      Deno.statSync(`${dir}/pg_ctl`);
      return dir;
    } catch {
      continue;
    }
  }
  throw new PrerequisiteError(
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with `apt-get install postgresql-15` " +
      "(or set PG_BINDIR, or DATABASE_URL to use an existing server)",
  );
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

const isRoot = Deno.uid() === 0;

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Runs a server binary, as the postgres system user when we are root. */
async function runServerCommand(binDir: string, cmd: string, args: string[]): Promise<void> {
  const program = isRoot ? "runuser" : `${binDir}/${cmd}`;
  const fullArgs = isRoot ? ["-u", "postgres", "--", `${binDir}/${cmd}`, ...args] : args;
  const result = await new Deno.Command(program, { args: fullArgs, stdout: "piped", stderr: "piped" })
    .output();
  if (!result.success) {
    const text = new TextDecoder().decode(result.stderr) + new TextDecoder().decode(result.stdout);
    throw new Error(`${cmd} failed (exit ${result.code}): ${text.trim().slice(-2000)}`);
  }
}

async function postgresUserIds(): Promise<{ uid: number; gid: number }> {
  const uid = await output("id", ["-u", "postgres"]);
  const gid = await output("id", ["-g", "postgres"]);
  if (uid === null || gid === null) {
    throw new PrerequisiteError(
      "running as root needs the `postgres` system user to run PostgreSQL: install `postgresql-15` " +
        "(it creates the user) or run the suite as a regular user",
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

export interface ClusterOptions {
  port?: number;
  /** Where initdb, pg_ctl and postgres are (default: the machine's own, findServerBinDir). */
  binDir?: string;
  /**
   * fsync, synchronous_commit and full_page_writes on, as on a production server (the bench measures
   * with them). Off by default: the test suite trades durability it does not need for speed.
   */
  productionDurability?: boolean;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const binDir = options.binDir ?? await findServerBinDir();
  const dir = await Deno.makeTempDir({ prefix: "payments-pg-" });
  if (isRoot) {
    const { uid, gid } = await postgresUserIds();
    await Deno.chown(dir, uid, gid);
  }
  const dataDir = `${dir}/data`;
  const port = options.port ?? freePort();
  let started = false;
  const stop = async () => {
    if (started) {
      started = false;
      await runServerCommand(binDir, "pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]).catch(
        () => {},
      );
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await runServerCommand(binDir, "initdb", [
      "-D",
      dataDir,
      "-U",
      "supabase_admin",
      "--auth=trust",
      "--encoding=UTF8",
      "--locale=C.UTF-8",
      "--no-sync",
    ]);
    const serverOptions = [
      `-p ${port}`,
      "-c listen_addresses=127.0.0.1",
      `-c unix_socket_directories=${dir}`,
      ...(options.productionDurability
        ? ["-c fsync=on", "-c synchronous_commit=on", "-c full_page_writes=on"]
        : ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]),
      "-c max_connections=200",
      // pg_cron when installed (postgresql-15-cron): jobs run in background workers, in this database
      ...(await exists(`${binDir}/../lib/pg_cron.so`)
        ? [
          "-c shared_preload_libraries=pg_cron",
          "-c cron.database_name=postgres",
          "-c cron.use_background_workers=on",
        ]
        : []),
    ].join(" ");
    await runServerCommand(binDir, "pg_ctl", [
      "-D",
      dataDir,
      "-l",
      `${dir}/server.log`,
      "-o",
      serverOptions,
      "-w",
      "start",
    ]);
    started = true;
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    adminUrl: `postgresql://supabase_admin@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop,
  };
}
