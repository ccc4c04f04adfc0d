/**
 * Which database errors mean "the database is briefly not there" (a 503 and a retry) rather than "this
 * statement is wrong" (a bug: 500). Kept apart from the client so the HTTP wrapper and the client's
 * reconnect logic read the same definition.
 */

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
]);

/** The server or the network dropped the connection itself (as opposed to a statement failing on it). */
export function isConnectionLostError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && (connectionLostCodes.has(code) || code.startsWith("08"))) return true;
  if (!(error instanceof Error)) return false;
  // Deno's own socket errors carry a class name instead of a code
  if (["ConnectionReset", "ConnectionAborted", "BrokenPipe", "NotConnected"].includes(error.name)) {
    return true;
  }
  return /socket has been ended by the other party|connection reset by peer/i.test(error.message);
}

/** Codes for "cannot reach the server right now" or "it refused this attempt for a passing reason". */
const transientCodes: ReadonlySet<string> = new Set([
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "57P03", // cannot_connect_now: starting up, shutting down, in recovery (refused at connect)
  "53300", // too_many_connections: max_connections reached
  "53400", // configuration_limit_exceeded
  "40001", // serialization_failure: the transaction can simply run again
  "40P01", // deadlock_detected: one side was rolled back and can run again
]);

/**
 * True for errors that mean "the database is briefly not there or refused this attempt for a passing
 * reason": the request changed nothing and the same request can be retried (503 `database_unavailable`).
 */
export function isTransientDatabaseError(error: unknown): boolean {
  if (isConnectionLostError(error)) return true;
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && transientCodes.has(code)) return true;
  if (isStalePreparedStatement(error)) return true;
  return error instanceof Error && (error.name === "ConnectionRefused" || error.name === "TimedOut");
}

/**
 * A prepared statement the server can no longer run as prepared: a migration changed its table ("cached
 * plan must not change result type") or a pooler handed over a connection without it. postgres.js drops the
 * statement from its cache when this happens but cannot re-prepare inside a transaction, so the request
 * fails once and its retry runs on a fresh plan.
 */
function isStalePreparedStatement(error: unknown): boolean {
  const routine = (error as { routine?: unknown })?.routine;
  return routine === "RevalidateCachedQuery" || routine === "FetchPreparedStatement";
}
