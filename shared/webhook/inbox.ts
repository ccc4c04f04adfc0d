/**
 * The webhook inbox (`webhook_logs`): one row per `webhook-id`, with its attempts, outcome and processing
 * time. Payment events are recorded, applied and finished by one database call (see webhook.ts); what is
 * here records everything else: deliveries we cannot process, payment events PortOne could not be asked
 * about, and the lease-based claim of the other events (billing keys), so that a delivery whose isolate
 * died is taken over once its lease runs out.
 */
import type { Sql } from "../infra/db.ts";
import { sha256Hex } from "../infra/crypto.ts";
import type { Row } from "../infra/rows.ts";
import { type Delivery, truncate, type VerifiedEvent } from "./formats.ts";

/** How long one delivery may process before another delivery of the same id may take over. */
const leaseSeconds = 60;

export type WebhookOutcome = "processed" | "ignored";

export type InboxRow = Pick<Row<"webhook_logs">, "id" | "status" | "lease_token">;

/** A non-empty string field of an event's data, or null. */
export function stringField(data: Record<string, unknown>, key: string): string | null {
  const value = data[key];
  return typeof value === "string" && value.length > 0 ? value : null;
}

/** The `webhook-timestamp` header as the SDK read it (integer seconds), or null. */
function timestampOf(header: string | undefined): string | null {
  const seconds = Number.parseInt(header ?? "", 10);
  return Number.isSafeInteger(seconds) && Math.abs(seconds) < 1e11
    ? new Date(seconds * 1000).toISOString()
    : null;
}

/**
 * Records a delivery we will not process (malformed or in an unsupported format), finished at once, keyed
 * by its webhook-id (or that id's hash when it cannot be stored); redeliveries only count attempts.
 * Returns whether this was the first delivery of the id.
 */
export async function recordUnprocessable(
  sql: Sql,
  webhookId: string,
  delivery: Exclude<Delivery, { kind: "event" }>,
  payload: unknown,
  rawBody: string,
  timestamp: string | undefined,
): Promise<boolean> {
  const payloadJson = JSON.stringify(payload);
  const bodyHash = await sha256Hex(rawBody);
  const [row] = await sql<{ inserted: boolean }[]>`
    insert into public.webhook_logs as w
      (webhook_id, webhook_timestamp, payload, payload_sha256, status, last_error, processed_at, processing_ms)
    values
      (${webhookId}, ${timestampOf(timestamp)}, ${payloadJson}::jsonb, ${bodyHash},
       ${delivery.kind}, ${delivery.reason}, now(), 0)
    on conflict (webhook_id) do update set
      attempts = w.attempts + 1,
      last_received_at = now(),
      payload_conflict = w.payload_conflict or w.payload_sha256 <> excluded.payload_sha256
    returning (xmax = 0) as inserted`;
  return row?.inserted ?? false;
}

/** What the inbox keeps of a verified event: billing keys charge cards, so never the key itself. */
export async function inboxFields(event: VerifiedEvent, rawBody: string, timestamp: string | undefined) {
  return {
    webhookTimestamp: timestampOf(timestamp),
    eventType: truncate(event.type, 100),
    paymentId: stringField(event.data, "paymentId"),
    storeId: stringField(event.data, "storeId"),
    payload: {
      ...event,
      data: { ...event.data, ...("billingKey" in event.data ? { billingKey: "[redacted]" } : {}) },
    },
    payloadSha256: await sha256Hex(rawBody),
  };
}
export type InboxFields = Awaited<ReturnType<typeof inboxFields>>;

/** Records the delivery and claims it when nobody else is processing it, in one statement. */
export async function recordDelivery(
  sql: Sql,
  webhookId: string,
  fields: InboxFields,
  leaseToken: string,
): Promise<InboxRow> {
  const [row] = await sql<InboxRow[]>`
    insert into public.webhook_logs as w
      (webhook_id, webhook_timestamp, event_type, payment_id, store_id, payload, payload_sha256, status,
       lease_token, lease_expires_at)
    values
      (${webhookId}, ${fields.webhookTimestamp}, ${fields.eventType}, ${fields.paymentId}, ${fields.storeId},
       ${sql.json(fields.payload as never)}, ${fields.payloadSha256},
       'processing', ${leaseToken}, now() + make_interval(secs => ${leaseSeconds}))
    on conflict (webhook_id) do update set
      attempts = w.attempts + 1,
      last_received_at = now(),
      payload_conflict = w.payload_conflict or w.payload_sha256 <> excluded.payload_sha256,
      status = case when w.status = 'failed' or (w.status in ('received', 'processing') and w.lease_expires_at < now())
        then 'processing' else w.status end,
      lease_token = case when w.status = 'failed' or (w.status in ('received', 'processing') and w.lease_expires_at < now())
        then excluded.lease_token else w.lease_token end,
      lease_expires_at = case when w.status = 'failed' or (w.status in ('received', 'processing') and w.lease_expires_at < now())
        then excluded.lease_expires_at else w.lease_expires_at end
    returning w.id, w.status, w.lease_token`;
  return row!;
}

/**
 * Records a payment event PortOne could not be asked about (unreachable, refusing) as failed, unless it was
 * finished meanwhile; PortOne retries it. Best effort: the database may be what failed.
 */
export async function recordFailedDelivery(
  sql: Sql,
  webhookId: string,
  fields: InboxFields,
  note: string,
  started: number,
): Promise<void> {
  await sql`
    insert into public.webhook_logs as w
      (webhook_id, webhook_timestamp, event_type, payment_id, store_id, payload, payload_sha256, status,
       last_error, processing_ms)
    values
      (${webhookId}, ${fields.webhookTimestamp}, ${fields.eventType}, ${fields.paymentId}, ${fields.storeId},
       ${sql.json(fields.payload as never)}, ${fields.payloadSha256}, 'failed', ${note},
       ${Math.round(performance.now() - started)})
    on conflict (webhook_id) do update set
      attempts = w.attempts + 1,
      last_received_at = now(),
      payload_conflict = w.payload_conflict or w.payload_sha256 <> excluded.payload_sha256,
      status = case when w.status in ('processed', 'ignored') then w.status else 'failed' end,
      last_error = case when w.status in ('processed', 'ignored') then w.last_error else excluded.last_error end,
      processing_ms = case when w.status in ('processed', 'ignored') then w.processing_ms
        else excluded.processing_ms end`;
}

/** Takes over a row that failed or whose lease ran out while we waited; does not count a delivery. */
export async function tryClaim(sql: Sql, id: number, leaseToken: string): Promise<InboxRow | undefined> {
  const [row] = await sql<InboxRow[]>`
    update public.webhook_logs
    set status = 'processing', lease_token = ${leaseToken}, lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
    where id = ${id} and (status = 'failed' or (status in ('received', 'processing') and lease_expires_at < now()))
    returning id, status, lease_token`;
  return row;
}

export async function readStatus(sql: Sql, id: number): Promise<string | undefined> {
  const [row] = await sql<{ status: string }[]>`select status from public.webhook_logs where id = ${id}`;
  return row?.status;
}

export async function finish(
  sql: Sql,
  id: number,
  leaseToken: string,
  status: WebhookOutcome | "failed",
  note: string | null,
  started: number,
): Promise<void> {
  await sql`
    update public.webhook_logs
    set status = ${status}, last_error = ${note}, lease_token = null, lease_expires_at = null,
        processed_at = case when ${status} = 'failed' then processed_at else now() end,
        processing_ms = ${Math.round(performance.now() - started)}
    where id = ${id} and lease_token = ${leaseToken}`;
}
