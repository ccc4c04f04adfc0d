/**
 * `startStack()`: the whole local backend in one process — database, PortOne (sandbox or real), the
 * gateway with every function — as `deno task dev` runs it. One stack per process: the functions read
 * their environment at module load (runtimeDeps), and a module is loaded once per process.
 */
import { postgres } from "../../shared/infra/deps.ts";
import type { EdgeFunction } from "../../shared/infra/http.ts";
import {
  type Cluster,
  freePort,
  removeAbandonedClusters,
  startCluster,
} from "../support/postgres-cluster.ts";
import { applyBootstrap, pushMigrations, runSql, withDatabase } from "../support/database.ts";
import { parseToml } from "../support/deps.ts";
import { type Sandbox, startSandbox } from "../sandbox/sandbox.ts";
import { createGateway, type LoadedFunction } from "./gateway.ts";
import { describePostgres, findPostgres, type PostgresBinaries } from "./postgres-finder.ts";
import { defaultStateFile, type DevKeys, loadDevKeys, repoRoot } from "./keys.ts";

/** The variables that switch from the sandbox to a real PortOne store; all or none. */
export const portoneVariables = [
  "PORTONE_API_BASE",
  "PORTONE_API_SECRET",
  "PORTONE_STORE_ID",
  "PORTONE_CHANNEL_KEY",
  "PORTONE_WEBHOOK_SECRET",
] as const;

export interface StackState {
  readonly pid: number;
  readonly supabaseUrl: string;
  readonly anonKey: string;
  /** What functions and `deno task token` use (Supabase's `postgres` role on a throwaway cluster). */
  readonly databaseUrl: string;
  /** Superuser, or DATABASE_URL itself when one was given. */
  readonly adminDatabaseUrl: string;
  readonly database: "cluster" | "DATABASE_URL";
  /** Whose PostgreSQL runs the throwaway cluster (null with DATABASE_URL). */
  readonly postgres: { readonly source: "system" | "embedded"; readonly description: string } | null;
  readonly portone: "sandbox" | "external";
  readonly sandbox: { readonly url: string; readonly controlUrl: string; readonly storeId: string } | null;
  readonly webhookUrl: string;
  /** Bearer secret for the `reconcile` function (RECONCILE_SECRET), random per run unless given. */
  readonly reconcileSecret: string;
  readonly functions: Record<string, { verifyJwt: boolean; loaded: boolean; error?: string }>;
  readonly readyMs: number;
}

export interface Stack extends AsyncDisposable {
  readonly state: StackState;
  readonly keys: DevKeys;
  readonly sandbox: Sandbox | null;
  close(): Promise<void>;
}

export interface StackOptions {
  /** The environment to read settings from (default: the process's). */
  readonly env?: Record<string, string>;
  /** Where to write the state file for `deno task token` (default: .artifacts/devstack.json). */
  readonly stateFile?: string;
  /** Progress lines (start-up steps and their timings). */
  readonly progress?: (line: string) => void;
}

const functionsDir = new URL("../../supabase/functions/", import.meta.url);

/** The teardown of every stack of this process that is starting or running, for a crash or a signal. */
const activeTeardowns = new Set<() => Promise<void>>();

/**
 * Tears down every stack of this process (server, sandbox, cluster, state file). For `deno task dev`'s
 * signal and crash handlers, which may fire while a stack is still starting.
 */
export async function closeActiveStacks(): Promise<void> {
  await Promise.all([...activeTeardowns].map((teardown) => teardown()));
}

/** Whether `pid` is a live Deno process (Linux /proc; elsewhere assume alive, the safe answer). */
function isLiveDenoProcess(pid: number): boolean {
  try {
    Deno.statSync("/proc/self/cmdline");
  } catch {
    return true;
  }
  try {
    return /deno/.test(Deno.readTextFileSync(`/proc/${pid}/cmdline`));
  } catch {
    return false;
  }
}

/**
 * What an earlier stack that died without cleaning up (kill -9, a crash past its handlers) left: its
 * state file, naming a process that is gone, and its throwaway cluster. A state file of a stack that is
 * still running is a refusal, not something to delete.
 */
async function removeLeftovers(stateFile: string, progress: (line: string) => void): Promise<void> {
  let previous: StackState | null = null;
  try {
    previous = JSON.parse(await Deno.readTextFile(stateFile)) as StackState;
  } catch {
    // no state file, or an unreadable one (removed below)
  }
  if (previous && previous.pid !== Deno.pid && isLiveDenoProcess(previous.pid)) {
    throw new Error(`another stack (pid ${previous.pid}) is running with ${stateFile}: stop it first`);
  }
  try {
    await Deno.remove(stateFile);
    progress(`removed a stale state file left by pid ${previous?.pid ?? "?"}`);
  } catch {
    // nothing was left
  }
  for (const dir of await removeAbandonedClusters()) progress(`removed an abandoned cluster: ${dir}`);
}

/** Function names are the directories holding an index.ts (skipping `_shared`-style helpers). */
export async function listFunctions(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(functionsDir)) {
    if (!entry.isDirectory || entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
    try {
      await Deno.stat(new URL(`${entry.name}/index.ts`, functionsDir));
      names.push(entry.name);
    } catch {
      continue;
    }
  }
  return names.sort();
}

/** verify_jwt per function as config.toml states it; the CLI treats an unlisted function as `true`. */
async function verifyJwtSettings(): Promise<Record<string, boolean>> {
  const config = parseToml(await Deno.readTextFile(`${repoRoot}supabase/config.toml`)) as {
    functions?: Record<string, { verify_jwt?: boolean }>;
  };
  return Object.fromEntries(
    Object.entries(config.functions ?? {}).map(([name, fn]) => [name, fn.verify_jwt ?? true]),
  );
}

/** supabase-js's self-contained browser build, served to the demo page from Deno's npm cache. */
async function supabaseJsBrowserBuild(): Promise<string> {
  const deps = await Deno.readTextFile(`${repoRoot}tests/support/deps.ts`);
  const version = /npm:@supabase\/supabase-js@([0-9][^"']*)/.exec(deps)?.[1];
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  })
    .output();
  const npmCache = (JSON.parse(new TextDecoder().decode(info.stdout)) as { npmCache?: string }).npmCache;
  const candidates = [
    `${npmCache}/registry.npmjs.org/@supabase/supabase-js/${version}/dist/umd/supabase.js`,
    `${repoRoot}node_modules/@supabase/supabase-js/dist/umd/supabase.js`,
  ];
  for (const file of candidates) {
    try {
      await Deno.stat(file);
      return file;
    } catch {
      continue;
    }
  }
  throw new Error(`supabase-js ${version} browser build not found (looked in ${candidates.join(", ")})`);
}

async function isSupabaseShaped(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ ready: boolean }[]>`
      select to_regclass('auth.users') is not null
         and exists (select from pg_roles where rolname = 'authenticated') as ready`;
    return row?.ready ?? false;
  } finally {
    await sql.end();
  }
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const started = performance.now();
  const env = options.env ?? Deno.env.toObject();
  const progress = options.progress ?? (() => {});
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)}s`;
  const stateFile = options.stateFile ?? env.DEVSTACK_STATE_FILE ?? defaultStateFile;
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => {});
  };
  activeTeardowns.add(cleanup);
  const teardown = async () => {
    await cleanup();
    activeTeardowns.delete(cleanup);
  };

  try {
    await removeLeftovers(stateFile, progress);
    const given = portoneVariables.filter((name) => env[name]);
    if (given.length > 0 && given.length < portoneVariables.length) {
      throw new Error(
        `set all of ${portoneVariables.join(", ")} to use a real PortOne store, or none for the sandbox ` +
          `(missing: ${portoneVariables.filter((name) => !env[name]).join(", ")})`,
      );
    }
    const external = given.length === portoneVariables.length;
    const keys = await loadDevKeys(env.DEVSTACK_KEY_FILE || undefined);

    // The gateway listens first: the functions need its URL (SUPABASE_URL) before they are imported.
    let handler: ((request: Request) => Promise<Response>) | null = null;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: Number(env.PORT || 54321), onListen: () => {} },
      (request) => handler ? handler(request) : Response.json({ message: "starting" }, { status: 503 }),
    );
    let serverStopped: Promise<void> | null = null;
    const stopServer = () => serverStopped ??= server.shutdown();
    cleanups.push(stopServer);
    const supabaseUrl = `http://127.0.0.1:${server.addr.port}`;

    // The database URL is known before the server runs (we pick the port), so migrations and the
    // functions' module loading overlap.
    let adminUrl: string;
    let appUrl: string;
    let startDatabase: () => Promise<void>;
    let binaries: PostgresBinaries | null = null;
    if (env.DATABASE_URL) {
      adminUrl = appUrl = env.DATABASE_URL;
      startDatabase = async () => {};
    } else {
      const port = freePort();
      adminUrl = `postgresql://supabase_admin@127.0.0.1:${port}/postgres`;
      const app = new URL(withDatabase(adminUrl, "postgres"));
      app.username = "postgres";
      app.password = "postgres";
      appUrl = app.toString();
      startDatabase = async () => {
        binaries = await findPostgres(env, progress);
        progress(`database: ${describePostgres(binaries)}`);
        const cluster: Cluster = await startCluster({ port, binDir: binaries.binDir });
        cleanups.push(() => cluster.stop());
        progress(`database: throwaway PostgreSQL cluster on 127.0.0.1:${port} (${elapsed()})`);
      };
    }
    const database = (async () => {
      await startDatabase();
      // An already Supabase-shaped database (a `supabase start` one, or one prepared before) keeps its
      // platform objects; the bootstrap is for plain PostgreSQL and needs a superuser.
      if (!(await isSupabaseShaped(adminUrl))) await applyBootstrap(adminUrl);
      progress(`database: Supabase bootstrap ready (${elapsed()})`);
      await pushMigrations(appUrl);
      progress(`database: supabase db push done (${elapsed()})`);
      await runSql(appUrl, await Deno.readTextFile(`${repoRoot}supabase/seed.sql`));
      progress(`database: seed.sql applied (${elapsed()})`);
    })();
    database.catch(() => {});

    const sandbox = external ? null : await startSandbox({
      port: Number(env.SANDBOX_PORT || 0) || undefined,
      controlPort: Number(env.SANDBOX_CONTROL_PORT || 0) || undefined,
      // PortOne retries webhooks over 1..256 minutes; locally that would look like a lost webhook
      retryTimeFactor: Number(env.SANDBOX_TIME_FACTOR || 1e-3),
    });
    if (sandbox) cleanups.push(() => sandbox.close());

    const reconcileSecret = env.RECONCILE_SECRET ||
      [...crypto.getRandomValues(new Uint8Array(24))].map((b) => b.toString(16).padStart(2, "0")).join("");
    const functionEnv: Record<string, string> = {
      SUPABASE_URL: supabaseUrl,
      SUPABASE_ANON_KEY: keys.anonKey,
      SUPABASE_JWKS: keys.jwks,
      SUPABASE_DB_URL: appUrl,
      DATABASE_URL: appUrl,
      IDENTITY_CI_PEPPER: env.IDENTITY_CI_PEPPER || keys.identityCiPepper,
      RECONCILE_SECRET: reconcileSecret,
      // a dev stack pays through the sandbox's (or a PortOne test store's) TEST channels
      PORTONE_STORE_MODE: env.PORTONE_STORE_MODE || "test",
      // derived from the saved pepper, so data sealed by one run still opens in the next
      DATA_ENCRYPTION_KEYS: env.DATA_ENCRYPTION_KEYS || `dev:${
        btoa(String.fromCharCode(
          ...new Uint8Array(
            await crypto.subtle.digest(
              "SHA-256",
              new TextEncoder().encode(`data-key:${keys.identityCiPepper}`),
            ),
          ),
        ))
      }`,
      ...(sandbox
        ? {
          PORTONE_API_BASE: sandbox.url,
          PORTONE_API_SECRET: sandbox.apiSecret,
          PORTONE_STORE_ID: sandbox.storeId,
          PORTONE_CHANNEL_KEY: sandbox.channels.test.key,
          PORTONE_CHANNEL_KEYS: JSON.stringify({ EASY_PAY: sandbox.channels.live.key }),
          PORTONE_WEBHOOK_SECRET: sandbox.webhookSecret,
        }
        : {}),
    };
    // Set before any function module is imported: they validate and read their config at load time.
    for (const [name, value] of Object.entries(functionEnv)) Deno.env.set(name, value);

    const verifyJwt = await verifyJwtSettings();
    const names = await listFunctions();
    const imported = new Map<string, LoadedFunction>();
    await Promise.all(names.map(async (name) => {
      const settings = { name, verifyJwt: verifyJwt[name] ?? true };
      try {
        const module = await import(new URL(`${name}/index.ts`, functionsDir).href) as {
          default?: EdgeFunction;
        };
        if (typeof module.default?.fetch !== "function") throw new Error("index.ts has no default { fetch }");
        imported.set(name, { ...settings, module: module.default });
      } catch (error) {
        imported.set(name, {
          ...settings,
          loadError: error instanceof Error ? error.message : String(error),
        });
      }
    }));
    const loaded = new Map(names.map((name) => [name, imported.get(name)!]));
    progress(`functions: ${loaded.size} imported (${elapsed()})`);

    await database;
    const sql = postgres(appUrl, { max: 2, onnotice: () => {} });
    cleanups.push(() => sql.end({ timeout: 1 }));

    const webhookUrl = `${supabaseUrl}/functions/v1/webhook`;
    sandbox?.setWebhookUrl(webhookUrl);
    const sandboxInfo = sandbox
      ? { url: sandbox.url, controlUrl: sandbox.controlUrl, storeId: sandbox.storeId }
      : null;
    handler = createGateway({
      functions: loaded,
      keys,
      sql,
      supabaseJsFile: await supabaseJsBrowserBuild(),
      publicConfig: () => ({
        supabaseUrl,
        anonKey: keys.anonKey,
        portone: sandbox ? "sandbox" : "external",
        sandbox: sandboxInfo,
        channels: sandbox ? { test: sandbox.channels.test.key } : null,
      }),
    });

    const state: StackState = {
      pid: Deno.pid,
      supabaseUrl,
      anonKey: keys.anonKey,
      databaseUrl: appUrl,
      adminDatabaseUrl: adminUrl,
      database: env.DATABASE_URL ? "DATABASE_URL" : "cluster",
      postgres: binaries === null
        ? null
        : { source: (binaries as PostgresBinaries).source, description: describePostgres(binaries) },
      portone: sandbox ? "sandbox" : "external",
      sandbox: sandboxInfo,
      webhookUrl,
      reconcileSecret,
      functions: Object.fromEntries(
        [...loaded.values()].map((fn) => [fn.name, {
          verifyJwt: fn.verifyJwt,
          loaded: fn.module !== undefined,
          ...(fn.loadError ? { error: fn.loadError } : {}),
        }]),
      ),
      readyMs: Math.round(performance.now() - started),
    };
    await Deno.mkdir(stateFile.slice(0, stateFile.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(stateFile, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
    cleanups.push(() => Deno.remove(stateFile));

    let closing: Promise<void> | null = null;
    const stack: Stack = {
      state,
      keys,
      sandbox,
      // stop taking requests first, then tear down what they would use
      close: () => closing ??= stopServer().then(teardown),
      [Symbol.asyncDispose]: () => stack.close(),
    };
    return stack;
  } catch (error) {
    await teardown();
    throw error;
  }
}
