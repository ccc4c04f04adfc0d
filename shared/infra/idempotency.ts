/**
 * Idempotency-Key support for our own functions (prepare, cancel, billing-key pay), kept in Postgres:
 * the first request with a key claims it and its final reply is stored; a retry with the same key and the
 * same request gets that reply again; the same key with a different request is refused (422); a retry
 * while the first is still running gets 409. Replies of 5xx are not stored, so a retry after an outage
 * runs again, and neither are "in progress" refusals.
 *
 * A claim must never outlive its request for long, or the client's retry after a 503 is refused:
 * - a request that fails with 5xx releases its claim at once;
 * - if the database is unreachable then, the release is remembered and retried by the next request in
 *   this isolate before it claims anything (so a retry reaching the same isolate runs at once);
 * - the claim's lease is short and kept alive by a heartbeat while the request runs, so a claim whose
 *   request died with its isolate (or whose release never got through) is taken over after the lease.
 * Every write to a claim names the claim it made (id and claim time), so a request whose claim was taken
 * over never releases or completes the new owner's claim.
 *
 * Round trips are the cost of a request (issue #14), so the bookkeeping rides on statements that are sent
 * anyway: the claim is one call (private.claim_idempotency_key) that also evaluates the request's
 * requirements (ownership) and travels with the work's first read (`prefetch`); the completion travels with
 * the work's last write (ReplyWithWrite). A request costs the work's own round trips plus at most two.
 */
import { isTransientDatabaseError, type Sql } from "./db.ts";
import { sha256Hex } from "./crypto.ts";
import { AppError, type ErrorCode } from "./errors.ts";
import { maxJsonDepth } from "./input-text.ts";

export interface StoredReply {
  readonly status: number;
  readonly body: unknown;
  readonly replayed: boolean;
}

export interface IdempotencyScope<Prefetched = undefined> {
  readonly userId: string;
  readonly route: string;
  /** The Idempotency-Key header, or null when the client sent none. */
  readonly key: string | null;
  /** The validated request, hashed to detect a key reused for another request. */
  readonly request: unknown;
  /** Checked before anything is recorded for the key, in order; see Requirement. */
  readonly requires?: readonly Requirement[];
  /**
   * A read the work needs first, sent beside the claim (one round trip for both) and handed to `work`. It is
   * sent whether or not the claim is granted (a refused or replayed request drops it), so it must not write
   * and must read only what the caller may see anyway.
   */
  readonly prefetch?: (sql: Sql) => PromiseLike<Prefetched>;
}

export interface ClaimTiming {
  /** How long a claim stays locked past its last heartbeat. */
  readonly leaseMs: number;
  /** How often a running request renews its lease. */
  readonly heartbeatMs: number;
}

export const defaultClaimTiming: ClaimTiming = { leaseMs: 10_000, heartbeatMs: 3_000 };

interface ClaimRef {
  readonly id: number;
  /** When this claim was made; a takeover changes it, so it tells our claim from a later owner's. */
  readonly claimedAt: string;
}

/** Releases that did not get through (database unreachable), retried before this isolate's next claim. */
const undeliveredReleases = new Map<number, ClaimRef>();
const maxUndeliveredReleases = 1_000;

async function release(sql: Sql, claim: ClaimRef): Promise<void> {
  await sql`
    delete from public.idempotency_keys
    where id = ${claim.id} and created_at = ${claim.claimedAt}::text::timestamptz and status = 'in_progress'`;
}

async function deliverPendingReleases(sql: Sql): Promise<void> {
  for (const claim of [...undeliveredReleases.values()]) {
    try {
      await release(sql, claim);
      undeliveredReleases.delete(claim.id);
    } catch (error) {
      if (isTransientDatabaseError(error)) throw error; // still unreachable: this request fails too
      undeliveredReleases.delete(claim.id);
    }
  }
}

async function releaseOrRemember(sql: Sql, claim: ClaimRef): Promise<void> {
  try {
    await release(sql, claim);
  } catch {
    if (undeliveredReleases.size >= maxUndeliveredReleases) return; // the lease frees it soon anyway
    undeliveredReleases.set(claim.id, claim);
  }
}

/** Renews the claim's lease until stopped; best effort (a missed beat only shortens the lease). */
function startHeartbeat(sql: Sql, claim: ClaimRef, timing: ClaimTiming): () => void {
  const timer = setInterval(() => {
    sql`
      update public.idempotency_keys
      set locked_until = now() + make_interval(secs => ${timing.leaseMs / 1000})
      where id = ${claim.id} and created_at = ${claim.claimedAt}::text::timestamptz and status = 'in_progress'`
      .catch(() => {});
  }, timing.heartbeatMs);
  return () => clearInterval(timer);
}

/** Refusals that only mean "not now": storing them would make every retry with the same key fail too. */
const retryableCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "request_in_progress",
  "cancel_in_progress",
  "payment_in_progress",
  "webhook_in_progress",
]);

/** Reads and checks the Idempotency-Key header; RFC 8941 quoting is accepted and removed. */
export function idempotencyKeyFrom(request: Request): string | null {
  const raw = request.headers.get("idempotency-key");
  if (raw === null) return null;
  const key = raw.trim().replace(/^"(.*)"$/, "$1");
  if (!/^[\x21-\x7e]{8,255}$/.test(key)) {
    throw new AppError("invalid_request", "Idempotency-Key must be 8 to 255 visible ASCII characters", {
      details: { field: "Idempotency-Key" },
    });
  }
  return key;
}

/**
 * JSON with sorted keys, so equal requests hash equally. Recursive, hence bounded: requests reach it only
 * after `validate` (at most `maxJsonDepth` deep), and anything deeper is refused rather than overflow.
 */
export function canonicalJson(value: unknown, depth = 0): string {
  if (depth > maxJsonDepth) {
    throw new AppError("invalid_request", `Request nested deeper than ${maxJsonDepth} levels`);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item, depth + 1)).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, inner]) => inner !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${
      entries.map(([k, inner]) => `${JSON.stringify(k)}:${canonicalJson(inner, depth + 1)}`).join(",")
    }}`;
  }
  return JSON.stringify(value);
}

function errorReply(error: AppError): { status: number; body: unknown } {
  return {
    status: error.status,
    body: { error: { code: error.code, message: error.message, ...error.details } },
  };
}

/** A boolean SQL expression (a postgres.js fragment), e.g. `exists (select 1 from … where user_id = …)`. */
export type Condition = ReturnType<Sql["unsafe"]>;

/**
 * A precondition of recording anything for the key, e.g. "the order is the caller's": it is evaluated in
 * the claim's own statement (no round trip of its own), and a request that fails it is refused with
 * `otherwise()` before anything is written, not even the claim. Without an Idempotency-Key nothing is
 * recorded and requirements are not evaluated: the work must refuse such a request on its own as well.
 */
export interface Requirement {
  readonly holds: (sql: Sql) => Condition;
  readonly otherwise: () => AppError;
}

/**
 * A reply whose work ends with a write still to be sent (made with `sql`, not awaited): withIdempotency
 * sends the key's completion beside it on the same connection, so both share one round trip. The reply
 * counts as given only once the write succeeded too; if the write fails, the request fails (with that
 * error) even if the reply was stored meanwhile, and a retry with the key then gets the stored reply.
 */
export class ReplyWithWrite {
  constructor(readonly body: unknown, readonly lastWrite: PromiseLike<unknown>) {}
}

interface ClaimResult {
  refused: number | null;
  claim_id: number | null;
  claimed_at: string | null;
  stored_request_hash: string | null;
  stored_status: string | null;
  stored_response_status: number | null;
  stored_response_body: unknown;
}

/** `array[(c1), (c2), …]::boolean[]`, the requirements in order. */
function requirementArray(sql: Sql, requirements: readonly Requirement[]): Condition {
  if (requirements.length === 0) return sql`'{}'::boolean[]`;
  const items = requirements.map((requirement, index) =>
    index === 0 ? sql`(${requirement.holds(sql)})` : sql`, (${requirement.holds(sql)})`
  );
  return sql`array[${items}]::boolean[]`;
}

/**
 * Runs `work` at most once per (user, route, key). `work` returns the JSON body of a 200 (or a
 * ReplyWithWrite); an AppError it throws with a final 4xx status is stored like a reply, anything else
 * leaves the key free for a retry.
 */
export async function withIdempotency<Prefetched = undefined>(
  sql: Sql,
  scope: IdempotencyScope<Prefetched>,
  work: (prefetched: Prefetched) => Promise<unknown>,
  timing: ClaimTiming = defaultClaimTiming,
): Promise<StoredReply> {
  const prefetch = scope.prefetch ?? (() => Promise.resolve(undefined as Prefetched));
  if (scope.key === null) {
    const result = await work(await prefetch(sql));
    if (!(result instanceof ReplyWithWrite)) return { status: 200, body: result, replayed: false };
    await result.lastWrite;
    return { status: 200, body: result.body, replayed: false };
  }
  const requestHash = await sha256Hex(canonicalJson(scope.request));
  await deliverPendingReleases(sql);

  const requirements = scope.requires ?? [];
  // both sent at once: pipelined on the connection, one round trip
  const [claiming, prefetching] = await Promise.allSettled([
    sql<ClaimResult[]>`
      select refused, claim_id, claimed_at, stored_request_hash, stored_status, stored_response_status,
             stored_response_body
      from private.claim_idempotency_key(${scope.userId}, ${scope.route}, ${scope.key}, ${requestHash},
                                         ${timing.leaseMs / 1000}, ${requirementArray(sql, requirements)})`,
    prefetch(sql),
  ]);
  if (claiming.status === "rejected") throw claiming.reason;
  const [claimed] = claiming.value;
  if (!claimed) throw new Error("claim_idempotency_key returned no row");
  if (claimed.refused !== null) throw requirements[claimed.refused - 1]!.otherwise();

  if (claimed.claim_id === null || claimed.claimed_at === null) {
    if (claimed.stored_request_hash === null) {
      throw new AppError("request_in_progress", "A request with this Idempotency-Key is in progress");
    }
    if (claimed.stored_request_hash !== requestHash) {
      throw new AppError("idempotency_key_reused", "This Idempotency-Key was used for a different request");
    }
    if (claimed.stored_status !== "completed" || claimed.stored_response_status === null) {
      throw new AppError("request_in_progress", "A request with this Idempotency-Key is in progress");
    }
    return { status: claimed.stored_response_status, body: claimed.stored_response_body, replayed: true };
  }

  const claim: ClaimRef = { id: claimed.claim_id, claimedAt: claimed.claimed_at };
  if (prefetching.status === "rejected") {
    await releaseOrRemember(sql, claim);
    throw prefetching.reason;
  }
  const stopHeartbeat = startHeartbeat(sql, claim, timing);
  let reply: { status: number; body: unknown };
  let lastWrite: PromiseLike<unknown> | null = null;
  try {
    const result = await work(prefetching.value);
    if (result instanceof ReplyWithWrite) {
      reply = { status: 200, body: result.body };
      lastWrite = result.lastWrite;
    } else {
      reply = { status: 200, body: result };
    }
  } catch (error) {
    if (error instanceof AppError && error.status < 500 && !retryableCodes.has(error.code)) {
      reply = errorReply(error);
    } else {
      stopHeartbeat();
      await releaseOrRemember(sql, claim);
      throw error;
    }
  } finally {
    stopHeartbeat();
  }
  // both sent at once: pipelined on the connection, one round trip
  const [written, stored] = await Promise.allSettled([
    lastWrite ?? Promise.resolve(),
    sql`
      update public.idempotency_keys
      set status = 'completed', response_status = ${reply.status},
          response_body = ${sql.json(reply.body as never)}, completed_at = now(), locked_until = null
      where id = ${claim.id} and created_at = ${claim.claimedAt}::text::timestamptz`,
  ]);
  if (stored.status === "rejected") {
    // the work is done but its reply could not be stored: free the key so a retry is not refused, and
    // let the retry find the done work through the work's own state (the 5xx says "retry")
    await releaseOrRemember(sql, claim);
    throw written.status === "rejected" ? written.reason : stored.reason;
  }
  if (written.status === "rejected") throw written.reason;
  return { ...reply, replayed: false };
}
