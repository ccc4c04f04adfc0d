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
  /** The server's log file (useful when a test needs to see why the server refused something). */
  readonly logFile: string;
  /**
   * `pg_ctl restart -m <mode>`: `fast` ends sessions cleanly (57P01), `immediate` kills the server like a
   * crash and the next start runs crash recovery. Resolves once the server accepts connections again.
   */
  restart(mode: "fast" | "immediate"): Promise<void>;
  /**
   * `pg_ctl stop -m <mode>` without removing the cluster; `start()` brings it back. `wait: false` returns
   * at once (a `smart` stop waits for every session to end and refuses new ones meanwhile).
   */
  stopServer(mode: "smart" | "fast" | "immediate", options?: { wait?: boolean }): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  readonly port?: number;
  /** Where initdb, pg_ctl and postgres are (default: the machine's own, findServerBinDir). */
  readonly binDir?: string;
  /**
   * fsync, synchronous_commit and full_page_writes on, as on a production server (the bench measures with
   * them, and so does every test that claims a write survived a crash). Off by default: the suite trades
   * durability it does not need for speed, and an immediate stop then loses acknowledged commits.
   */
  readonly productionDurability?: boolean;
  readonly maxConnections?: number;
}

/** A command's trimmed stdout, or null when it is missing or fails. */
export async function output(cmd: string, args: string[]): Promise<string | null> {
  try {
    const result = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return result.success ? new TextDecoder().decode(result.stdout).trim() : null;
  } catch {
    return null;
  }
}

/**
 * Where server binaries may be, best first: PG_BINDIR, `pg_config --bindir`, then Debian's
 * `/usr/lib/postgresql/<major>/bin`, newest major first (Debian keeps them off PATH).
 */
export async function serverBinDirCandidates(env: Record<string, string | undefined>): Promise<string[]> {
  const candidates: string[] = [];
  if (env.PG_BINDIR) candidates.push(env.PG_BINDIR);
  const fromPgConfig = await output("pg_config", ["--bindir"]);
  if (fromPgConfig) candidates.push(fromPgConfig);
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")]
      .map((entry) => entry.name)
      .filter((name) => /^\d+$/.test(name))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // no Debian layout
  }
  return candidates;
}

/** The directory holding initdb, pg_ctl and postgres. */
export async function findServerBinDir(): Promise<string> {
  const candidates = await serverBinDirCandidates(Deno.env.toObject());
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

const clusterPrefix = "payments-pg-";
const ownerFile = "owner.json";

interface Owner {
  readonly pid: number;
  /** The owner's start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a reused pid. */
  readonly started: string | null;
  /** The server binaries that run the cluster (they stop it too). */
  readonly binDir?: string;
}

function processStart(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // the command name (field 2) may hold spaces and parentheses: count fields after its closing ')'
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function isAlive(owner: Owner): boolean {
  const started = processStart(owner.pid);
  return started !== null && (owner.started === null || started === owner.started);
}

/**
 * Stops and removes the throwaway clusters whose owning process is gone (killed with SIGKILL, crashed
 * past its cleanup). Clusters without an owner record (made by older code) and those of live
 * processes are left alone. Returns the directories removed. Needs /proc (Linux); elsewhere a no-op.
 */
export async function removeAbandonedClusters(): Promise<string[]> {
  try {
    Deno.statSync("/proc/self/stat");
  } catch {
    return [];
  }
  const tmp = Deno.env.get("TMPDIR") || "/tmp";
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(tmp)];
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!entry.isDirectory || !entry.name.startsWith(clusterPrefix)) continue;
    const dir = `${tmp}/${entry.name}`;
    let owner: Owner;
    try {
      owner = JSON.parse(await Deno.readTextFile(`${dir}/${ownerFile}`)) as Owner;
    } catch {
      continue;
    }
    if (typeof owner.pid !== "number" || isAlive(owner)) continue;
    try {
      Deno.statSync(`${dir}/data/postmaster.pid`);
      const binDir = owner.binDir ?? await findServerBinDir();
      await runServerCommand(binDir, "pg_ctl", ["-D", `${dir}/data`, "-m", "immediate", "-w", "stop"])
        .catch(() => {});
    } catch {
      // no server was running there
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    removed.push(dir);
  }
  return removed;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const binDir = options.binDir ?? await findServerBinDir();
  const dir = await Deno.makeTempDir({ prefix: clusterPrefix });
  // who made it, so that a later run can remove it if this process dies without cleaning up
  const owner: Owner = { pid: Deno.pid, started: processStart(Deno.pid), binDir };
  await Deno.writeTextFile(`${dir}/${ownerFile}`, JSON.stringify(owner));
  if (isRoot) {
    const { uid, gid } = await postgresUserIds();
    await Deno.chown(dir, uid, gid);
  }
  const dataDir = `${dir}/data`;
  const port = options.port ?? freePort();
  const logFile = `${dir}/server.log`;
  const durability = options.productionDurability ? "on" : "off";
  const serverOptions = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${dir}`,
    `-c fsync=${durability}`,
    `-c synchronous_commit=${durability}`,
    `-c full_page_writes=${durability}`,
    `-c max_connections=${options.maxConnections ?? 200}`,
    // pg_cron when installed (postgresql-15-cron): jobs run in background workers, in this database
    ...(await exists(`${binDir}/../lib/pg_cron.so`)
      ? [
        "-c shared_preload_libraries=pg_cron",
        "-c cron.database_name=postgres",
        "-c cron.use_background_workers=on",
      ]
      : []),
  ].join(" ");
  let started = false;
  const start = async () => {
    await runServerCommand(binDir, "pg_ctl", [
      "-D",
      dataDir,
      "-l",
      logFile,
      "-o",
      serverOptions,
      "-w",
      "start",
    ]);
    started = true;
  };
  const stopServer = async (mode: "smart" | "fast" | "immediate", { wait = true } = {}) => {
    await runServerCommand(binDir, "pg_ctl", ["-D", dataDir, "-m", mode, wait ? "-w" : "-W", "stop"]);
    if (wait) started = false;
  };
  const restart = async (mode: "fast" | "immediate") => {
    await stopServer(mode);
    await start();
  };
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
      ...(options.productionDurability ? [] : ["--no-sync"]),
    ]);
    await start();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    adminUrl: `postgresql://supabase_admin@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    logFile,
    restart,
    stopServer,
    start,
    stop,
  };
}
