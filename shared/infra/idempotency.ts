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
 */
import { isTransientDatabaseError, type Sql } from "./db.ts";
import { sha256Hex } from "./crypto.ts";
import { AppError, type ErrorCode } from "./errors.ts";
import { maxJsonDepth } from "./input-text.ts";
import type { Row } from "./rows.ts";

export interface StoredReply {
  readonly status: number;
  readonly body: unknown;
  readonly replayed: boolean;
}

export interface IdempotencyScope {
  readonly userId: string;
  readonly route: string;
  /** The Idempotency-Key header, or null when the client sent none. */
  readonly key: string | null;
  /** The validated request, hashed to detect a key reused for another request. */
  readonly request: unknown;
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

/**
 * Runs `work` at most once per (user, route, key). `work` returns the JSON body of a 200; an AppError it
 * throws with a final 4xx status is stored like a reply, anything else leaves the key free for a retry.
 */
export async function withIdempotency(
  sql: Sql,
  scope: IdempotencyScope,
  work: () => Promise<unknown>,
  timing: ClaimTiming = defaultClaimTiming,
): Promise<StoredReply> {
  if (scope.key === null) return { status: 200, body: await work(), replayed: false };
  const requestHash = await sha256Hex(canonicalJson(scope.request));
  await deliverPendingReleases(sql);

  // created_at travels as text both ways (`::text::timestamptz` below): a JS Date would drop its microseconds
  const [claimed] = await sql<(Pick<Row<"idempotency_keys">, "id"> & { claimed_at: string })[]>`
    insert into public.idempotency_keys (user_id, route, key, request_hash, status, locked_until)
    values (${scope.userId}, ${scope.route}, ${scope.key}, ${requestHash}, 'in_progress',
            now() + make_interval(secs => ${timing.leaseMs / 1000}))
    on conflict (user_id, route, key) do update set
      request_hash = excluded.request_hash, status = 'in_progress', locked_until = excluded.locked_until,
      response_status = null, response_body = null, created_at = now(), completed_at = null,
      expires_at = now() + interval '24 hours'
    where idempotency_keys.expires_at < now()
       or (idempotency_keys.status = 'in_progress' and idempotency_keys.locked_until < now()
           and idempotency_keys.request_hash = excluded.request_hash)
    returning id, created_at::text as claimed_at`;

  if (!claimed) {
    const [existing] = await sql<
      Pick<Row<"idempotency_keys">, "request_hash" | "status" | "response_status" | "response_body">[]
    >`
      select request_hash, status, response_status, response_body from public.idempotency_keys
      where user_id = ${scope.userId} and route = ${scope.route} and key = ${scope.key}`;
    if (!existing) {
      throw new AppError("request_in_progress", "A request with this Idempotency-Key is in progress");
    }
    if (existing.request_hash !== requestHash) {
      throw new AppError("idempotency_key_reused", "This Idempotency-Key was used for a different request");
    }
    if (existing.status !== "completed" || existing.response_status === null) {
      throw new AppError("request_in_progress", "A request with this Idempotency-Key is in progress");
    }
    return { status: existing.response_status, body: existing.response_body, replayed: true };
  }

  const claim: ClaimRef = { id: claimed.id, claimedAt: claimed.claimed_at };
  const stopHeartbeat = startHeartbeat(sql, claim, timing);
  let reply: { status: number; body: unknown };
  try {
    reply = { status: 200, body: await work() };
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
  try {
    await sql`
      update public.idempotency_keys
      set status = 'completed', response_status = ${reply.status},
          response_body = ${sql.json(reply.body as never)}, completed_at = now(), locked_until = null
      where id = ${claim.id} and created_at = ${claim.claimedAt}::text::timestamptz`;
  } catch (error) {
    // the work is done but its reply could not be stored: free the key so a retry is not refused, and
    // let the retry find the done work through the work's own state (the 5xx says "retry")
    await releaseOrRemember(sql, claim);
    throw error;
  }
  return { ...reply, replayed: false };
}
