/**
 * Idempotency-Key support for our own functions (prepare, cancel, billing-key pay), kept in Postgres:
 * the first request with a key claims it and its final reply is stored; a retry with the same key and the
 * same request gets that reply again; the same key with a different request is refused (422); a retry
 * while the first is still running gets 409. Replies of 5xx are not stored, so a retry after an outage
 * runs again, and neither are "in progress" refusals. A claim whose request died is taken over once its
 * lease has run out.
 */
import type { Sql } from "./db.ts";
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

const leaseSeconds = 60;

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
): Promise<StoredReply> {
  if (scope.key === null) return { status: 200, body: await work(), replayed: false };
  const requestHash = await sha256Hex(canonicalJson(scope.request));

  const [claimed] = await sql<Pick<Row<"idempotency_keys">, "id">[]>`
    insert into public.idempotency_keys (user_id, route, key, request_hash, status, locked_until)
    values (${scope.userId}, ${scope.route}, ${scope.key}, ${requestHash}, 'in_progress',
            now() + make_interval(secs => ${leaseSeconds}))
    on conflict (user_id, route, key) do update set
      request_hash = excluded.request_hash, status = 'in_progress', locked_until = excluded.locked_until,
      response_status = null, response_body = null, created_at = now(), completed_at = null,
      expires_at = now() + interval '24 hours'
    where idempotency_keys.expires_at < now()
       or (idempotency_keys.status = 'in_progress' and idempotency_keys.locked_until < now()
           and idempotency_keys.request_hash = excluded.request_hash)
    returning id`;

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

  let reply: { status: number; body: unknown };
  try {
    reply = { status: 200, body: await work() };
  } catch (error) {
    if (error instanceof AppError && error.status < 500 && !retryableCodes.has(error.code)) {
      reply = errorReply(error);
    } else {
      await sql`delete from public.idempotency_keys where id = ${claimed.id}`.catch(() => {});
      throw error;
    }
  }
  await sql`
    update public.idempotency_keys
    set status = 'completed', response_status = ${reply.status}, response_body = ${
    sql.json(reply.body as never)
  },
        completed_at = now(), locked_until = null
    where id = ${claimed.id}`;
  return { ...reply, replayed: false };
}
