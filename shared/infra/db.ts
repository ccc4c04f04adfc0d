/**
 * The Postgres client. Functions talk to Postgres directly (not through PostgREST) so that every money
 * state change is one real transaction with row locks. One client per isolate with a small pool;
 * `prepare: false` because Supabase's transaction pooler cannot keep prepared statements.
 */
import { postgres, type Sql } from "./deps.ts";

export type { Sql, TransactionSql } from "./deps.ts";

/** int8 (bigint) columns hold money in minor units; they arrive as exact JS integers or fail loudly. */
const int8AsSafeInteger = {
  to: 20,
  from: [20],
  serialize: (value: number | bigint | string) => String(value),
  parse: (text: string): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(`int8 value ${text} is outside the safe integer range`);
    }
    return value;
  },
};

export function createSql(url: string, options: { poolMax?: number } = {}): Sql {
  const sql = postgres(url, {
    prepare: false,
    max: options.poolMax ?? 1,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
    types: { int8: int8AsSafeInteger },
    connection: { application_name: "portone-payments" },
  }) as unknown as Sql;
  sql.begin = beginWithoutWritingToDeadConnections(
    sql.begin.bind(sql) as unknown as (...args: unknown[]) => Promise<unknown>,
  ) as unknown as Sql["begin"];
  return sql;
}

/** How long a transaction body's "connection lost" failure waits for postgres.js to notice the close. */
const connectionCloseGraceMs = 2_000;

/**
 * postgres.js 3.4.9 answers a failed transaction body with `ROLLBACK` on the same connection. When the
 * body failed because the server went away, that connection's socket is already gone: the ROLLBACK is
 * queued for a socket that is null, which throws `TypeError: Cannot read properties of null (reading
 * 'write')` from a timer (uncaught: it ends the process) or, when a reconnect raced it, is written ahead of
 * the next startup message and wedges the connection for good (porsager/postgres #1154, #1066, #1208).
 *
 * The server rolls back a transaction whose connection ended, and `begin()` rejects by itself when its
 * connection closes. So a body that failed with a lost connection holds its failure until `begin()` has
 * settled and then never hands it to postgres.js (no ROLLBACK is written); only if the connection is
 * still there after a grace period does the failure go through the normal ROLLBACK path.
 */
function beginWithoutWritingToDeadConnections(
  begin: (...args: unknown[]) => Promise<unknown>,
): (...args: unknown[]) => Promise<unknown> {
  return (...args: unknown[]) => {
    const body = args.pop() as (tx: unknown) => unknown;
    let settled = false;
    let onSettled: () => void = () => {};
    const settledSignal = new Promise<void>((resolve) => onSettled = resolve);
    const outcome = begin(...args, async (tx: unknown) => {
      try {
        return await body(tx);
      } catch (error) {
        if (isConnectionLostError(error)) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            settledSignal,
            new Promise((resolve) => timer = setTimeout(resolve, connectionCloseGraceMs)),
          ]);
          clearTimeout(timer);
          // begin() already rejected because the connection closed: a ROLLBACK now would hit a dead socket
          if (settled) await new Promise(() => {});
        }
        throw error;
      }
    });
    outcome.then(
      () => (settled = true, onSettled()),
      () => (settled = true, onSettled()),
    );
    return outcome;
  };
}

/** Codes postgres.js and the socket layer give a connection that ended under a query. */
const connectionLostCodes: ReadonlySet<string> = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ERR_SOCKET_CLOSED",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_WRITE_AFTER_END",
  "57P01", // admin_shutdown: pg_ctl stop -m fast, pg_terminate_backend
  "57P02", // crash_shutdown: another backend crashed, the server is resetting
  "57P03", // cannot_connect_now: starting up, shutting down, in recovery
]);

/** The server or the network dropped the connection itself (as opposed to a statement failing on it). */
export function isConnectionLostError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && (connectionLostCodes.has(code) || code.startsWith("08"))) return true;
  const message = error instanceof Error ? error.message : "";
  return /socket has been ended by the other party|connection (reset|closed|ended|terminated)/i.test(message);
}

/** True for errors that mean "the database is unreachable or overloaded right now", worth a retry. */
export function isTransientDatabaseError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  return code === "CONNECT_TIMEOUT" || code === "CONNECTION_CLOSED" || code === "CONNECTION_ENDED" ||
    code === "CONNECTION_DESTROYED" || code === "ECONNREFUSED" || code === "ECONNRESET" ||
    code === "40001" || code === "40P01" || code === "53300" || code === "57P01" || code.startsWith("08");
}
