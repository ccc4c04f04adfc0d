/**
 * `webhook`: PortOne's deliveries, verified, recorded exactly once per `webhook-id`, and turned into a
 * re-fetch of the object they name. The body never changes our state by itself.
 *
 * Formats: PortOne's console chooses the version per store. 2024-04-25 (`{ type, timestamp, data }`) and
 * 2024-01-01 (`{ payment_id, tx_id, status }`) both name a payment, which is all we need: both are
 * re-fetched the same way. V1 (iamport) bodies (`imp_uid`, `merchant_uid`) are not ours to process: they
 * are recorded as `unsupported_format` with a warning that says what to change in the console.
 *
 * Replies: 400 only when the signature or its headers fail (the reason goes to the log, never to the
 * caller); 200 for every verified delivery, including those we ignore (unknown types, other stores,
 * payments we never prepared), redeliveries of processed ids, and deliveries we can neither parse nor store
 * (not JSON, not an object, U+0000 or unpaired surrogates, absurd nesting, a webhook-id over 256
 * characters), which are recorded by hash as `malformed` and logged once: retrying them cannot help;
 * 409 while another delivery of the same id is still being processed; 5xx for our own failures (PortOne
 * or the database unreachable during processing) so PortOne retries.
 */
import { AppError } from "../infra/errors.ts";
import { defineFunction, type EdgeFunction, json, readBodyText } from "../infra/http.ts";
import { sha256Hex } from "../infra/crypto.ts";
import { log } from "../infra/log.ts";
import { isWebhookVerificationError, verifyWebhookSignature } from "../portone/gateway.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { type FetchedPayment, fetchPayment, syncResultOf } from "../payments/sync.ts";
import { syncBillingKey } from "../billing/keys.ts";
import { classify, type Delivery, truncate, type VerifiedEvent } from "./formats.ts";
import type { Row } from "../infra/rows.ts";

/** Transaction events: each one means "re-fetch this payment". */
const transactionTypes = new Set([
  "Transaction.Ready",
  "Transaction.Paid",
  "Transaction.VirtualAccountIssued",
  "Transaction.PartialCancelled",
  "Transaction.Cancelled",
  "Transaction.Failed",
  "Transaction.PayPending",
  "Transaction.CancelPending",
]);
const billingKeyTypes = new Set([
  "BillingKey.Issued",
  "BillingKey.Deleted",
  "BillingKey.Updated",
  "BillingKey.Failed",
]);

/** How long one delivery may process before another delivery of the same id may take over. */
const leaseSeconds = 60;
/** How long a concurrent duplicate waits for the first delivery to finish before answering 409. */
const duplicateWaitMs = 5_000;

export type WebhookOutcome = "processed" | "ignored";

type InboxRow = Pick<Row<"webhook_logs">, "id" | "status" | "lease_token">;

/**
 * Verifies with the current secret, then the previous one (rotation); returns the parsed body, or
 * `not_json` when the signature matched but the body is not JSON (the SDK parses only after a match).
 */
async function verify(
  deps: AppDeps,
  rawBody: string,
  headers: Record<string, string>,
): Promise<{ readonly body: unknown } | "not_json"> {
  let reason = "NO_SECRET_CONFIGURED";
  for (const secret of deps.config.portone.webhookSecrets) {
    try {
      return { body: await verifyWebhookSignature(secret, rawBody, headers) as unknown };
    } catch (error) {
      if (error instanceof SyntaxError) return "not_json";
      // anything but a verification failure (e.g. a malformed secret) is our misconfiguration: 500
      if (!isWebhookVerificationError(error)) throw error;
      reason = error.reason;
    }
  }
  log("warn", "webhook_rejected", {
    reason,
    webhookId: headers["webhook-id"]?.slice(0, 100) ?? null,
    bodyBytes: rawBody.length,
    // PortOne V1 (iamport) notifications are unsigned: say so, or the operator only sees rejections
    ...(/"(imp_uid|merchant_uid)"\s*:/.test(rawBody.slice(0, 2048))
      ? { hint: "looks like a PortOne V1 notification: this endpoint takes V2 webhooks (version 2024-04-25)" }
      : {}),
  });
  throw new AppError("invalid_signature", "Webhook signature verification failed");
}

function stringField(data: Record<string, unknown>, key: string): string | null {
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
async function recordUnprocessable(
  deps: AppDeps,
  webhookId: string,
  delivery: Exclude<Delivery, { kind: "event" }>,
  payload: unknown,
  rawBody: string,
  timestamp: string | undefined,
): Promise<boolean> {
  const payloadJson = JSON.stringify(payload);
  const bodyHash = await sha256Hex(rawBody);
  const [row] = await deps.sql<{ inserted: boolean }[]>`
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
async function inboxFields(event: VerifiedEvent, rawBody: string, timestamp: string | undefined) {
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
type InboxFields = Awaited<ReturnType<typeof inboxFields>>;

/** Records the delivery and claims it when nobody else is processing it, in one statement. */
async function recordDelivery(
  deps: AppDeps,
  webhookId: string,
  fields: InboxFields,
  leaseToken: string,
): Promise<InboxRow> {
  const [row] = await deps.sql<InboxRow[]>`
    insert into public.webhook_logs as w
      (webhook_id, webhook_timestamp, event_type, payment_id, store_id, payload, payload_sha256, status,
       lease_token, lease_expires_at)
    values
      (${webhookId}, ${fields.webhookTimestamp}, ${fields.eventType}, ${fields.paymentId}, ${fields.storeId},
       ${deps.sql.json(fields.payload as never)}, ${fields.payloadSha256},
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
async function recordFailedDelivery(
  deps: AppDeps,
  webhookId: string,
  fields: InboxFields,
  note: string,
  started: number,
): Promise<void> {
  await deps.sql`
    insert into public.webhook_logs as w
      (webhook_id, webhook_timestamp, event_type, payment_id, store_id, payload, payload_sha256, status,
       last_error, processing_ms)
    values
      (${webhookId}, ${fields.webhookTimestamp}, ${fields.eventType}, ${fields.paymentId}, ${fields.storeId},
       ${deps.sql.json(fields.payload as never)}, ${fields.payloadSha256}, 'failed', ${note},
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

/** Why a failure while processing was ours, as the inbox notes it. */
function failureNote(error: unknown): string {
  return error instanceof AppError ? error.code : error instanceof Error ? error.name : "error";
}

/** A refusal while processing is still our failure to apply a verified event: PortOne must retry. */
function asRetryable(error: unknown): unknown {
  return error instanceof AppError && error.status < 500
    ? new AppError("internal", "The webhook could not be applied", { cause: error })
    : error;
}

/**
 * A payment event of our store: PortOne is asked first, then the delivery is recorded, applied and finished
 * in one database call (private.receive_payment_webhook) — one round trip, one commit. A concurrent
 * delivery of the same id waits for that call and finds it finished; a redelivery of a finished id applies
 * nothing (the apply is monotonic, and the finished row answers "duplicate").
 */
async function receivePaymentEvent(
  deps: AppDeps,
  webhookId: string,
  fields: InboxFields,
  paymentId: string,
): Promise<Response> {
  const started = performance.now();
  let fetched: FetchedPayment;
  try {
    fetched = await fetchPayment(deps, paymentId, "webhook");
  } catch (error) {
    await recordFailedDelivery(deps, webhookId, fields, failureNote(error), started).catch(() => {});
    throw asRetryable(error);
  }
  const delivery = { webhookId, ...fields, processingMs: Math.round(performance.now() - started) };
  const [row] = await deps.sql<{ received: Parameters<typeof syncResultOf>[2] & { delivery: string } }[]>`
    select private.receive_payment_webhook(
      ${deps.sql.json(delivery as never)},
      ${fetched.kind === "payment" ? deps.sql.json(fetched.snapshot as never) : null},
      ${deps.config.portone.requireLiveChannel}
    ) as received`;
  const received = row!.received;
  if (received.delivery === "duplicate") return json({ received: true, status: "duplicate" });
  if (fetched.kind === "payment") syncResultOf(paymentId, "webhook", received);
  if (received.delivery === "ignored") {
    log("info", "webhook_ignored", { webhookId, type: fields.eventType, reason: "unknown_payment" });
  }
  return json({ received: true, status: received.delivery });
}

/** Takes over a row that failed or whose lease ran out while we waited; does not count a delivery. */
async function tryClaim(deps: AppDeps, id: number, leaseToken: string): Promise<InboxRow | undefined> {
  const [row] = await deps.sql<InboxRow[]>`
    update public.webhook_logs
    set status = 'processing', lease_token = ${leaseToken}, lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
    where id = ${id} and (status = 'failed' or (status in ('received', 'processing') and lease_expires_at < now()))
    returning id, status, lease_token`;
  return row;
}

async function readStatus(deps: AppDeps, id: number): Promise<string | undefined> {
  const [row] = await deps.sql<{ status: string }[]>`select status from public.webhook_logs where id = ${id}`;
  return row?.status;
}

/** The payment a verified event asks us to re-fetch: a payment event of our store that names one. */
function paymentToSync(deps: AppDeps, event: VerifiedEvent): string | null {
  if (!transactionTypes.has(event.type) && event.format !== "2024-01-01") return null;
  if (event.format === "2024-04-25" && stringField(event.data, "storeId") !== deps.config.portone.storeId) {
    return null;
  }
  return stringField(event.data, "paymentId");
}

/** Every other verified event: billing-key events, and those we ignore (with the reason). */
async function dispatch(deps: AppDeps, event: VerifiedEvent): Promise<[WebhookOutcome, string | null]> {
  const storeId = stringField(event.data, "storeId");
  if (
    event.format === "2024-04-25" && (transactionTypes.has(event.type) || billingKeyTypes.has(event.type))
  ) {
    if (storeId !== deps.config.portone.storeId) return ["ignored", "other_store"];
  }
  // a payment event with a paymentId went through receivePaymentEvent
  if (transactionTypes.has(event.type) || event.format === "2024-01-01") return ["ignored", "no_payment_id"];
  if (billingKeyTypes.has(event.type)) {
    const billingKey = stringField(event.data, "billingKey");
    if (!billingKey) return ["ignored", "no_billing_key"];
    return (await syncBillingKey(deps, billingKey)) === "not_ours"
      ? ["ignored", "unknown_billing_key"]
      : ["processed", null];
  }
  return ["ignored", "unhandled_type"];
}

async function finish(
  deps: AppDeps,
  id: number,
  leaseToken: string,
  status: WebhookOutcome | "failed",
  note: string | null,
  started: number,
): Promise<void> {
  await deps.sql`
    update public.webhook_logs
    set status = ${status}, last_error = ${note}, lease_token = null, lease_expires_at = null,
        processed_at = case when ${status} = 'failed' then processed_at else now() end,
        processing_ms = ${Math.round(performance.now() - started)}
    where id = ${id} and lease_token = ${leaseToken}`;
}

export async function receiveWebhook(deps: AppDeps, request: Request): Promise<Response> {
  // the raw text, exactly as signed; headers as a plain object (the SDK cannot read a Headers object)
  const rawBody = await readBodyText(request);
  const headers = Object.fromEntries(request.headers);
  const verified = await verify(deps, rawBody, headers);
  const signedId = headers["webhook-id"]!;
  // an id the column cannot hold is kept as its hash: still one row per id, still deduplicated
  const webhookId = signedId.length <= 256 ? signedId : `sha256:${await sha256Hex(signedId)}`;
  const delivery: Delivery = signedId.length > 256
    ? { kind: "malformed", reason: "webhook_id_too_long" }
    : verified === "not_json"
    ? { kind: "malformed", reason: "not_json" }
    : classify(verified.body);

  if (delivery.kind !== "event") {
    // V1 bodies are storable (classify checked); a malformed body is kept by its hash only
    const payload = delivery.kind === "unsupported_format" && verified !== "not_json" ? verified.body : null;
    const first = await recordUnprocessable(
      deps,
      webhookId,
      delivery,
      payload,
      rawBody,
      headers["webhook-timestamp"],
    );
    if (first && delivery.kind === "malformed") {
      log("warn", "webhook_malformed", {
        webhookId: truncate(signedId, 100),
        reason: delivery.reason,
        bodyBytes: rawBody.length,
      });
    } else if (first) {
      log("warn", "webhook_unsupported_format", {
        webhookId,
        reason: delivery.reason,
        action:
          "PortOne sends this endpoint V1 (iamport) notifications (imp_uid, merchant_uid), which are not processed: " +
          "in PortOne's console (결제연동 → 연동 관리 → 결제알림(Webhook)) send V2 webhooks, version 2024-04-25, " +
          "to this URL and point the V1 notification URL elsewhere",
      });
    }
    return json({ received: true, status: delivery.kind });
  }
  const event = delivery.event;
  const fields = await inboxFields(event, rawBody, headers["webhook-timestamp"]);
  const paymentId = paymentToSync(deps, event);
  if (paymentId !== null) return await receivePaymentEvent(deps, webhookId, fields, paymentId);

  const leaseToken = crypto.randomUUID();
  let row: InboxRow | undefined = await recordDelivery(deps, webhookId, fields, leaseToken);
  if (row.lease_token !== leaseToken) {
    // Another delivery of this id: done already, or still running somewhere. Wait a little for the
    // running one rather than make PortOne retry; take over if it failed or its lease ran out.
    const deadline = Date.now() + duplicateWaitMs;
    const id = row.id;
    row = undefined;
    while (!row) {
      const status = await readStatus(deps, id);
      if (status === "processed" || status === "ignored") {
        return json({ received: true, status: "duplicate" });
      }
      row = await tryClaim(deps, id, leaseToken);
      if (row) break;
      if (Date.now() > deadline) {
        throw new AppError("webhook_in_progress", "This delivery is being processed; retry later");
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  const started = performance.now();
  try {
    const [outcome, note] = await dispatch(deps, event);
    await finish(deps, row.id, leaseToken, outcome, note, started);
    if (outcome === "ignored") log("info", "webhook_ignored", { webhookId, type: event.type, reason: note });
    return json({ received: true, status: outcome });
  } catch (error) {
    await finish(deps, row.id, leaseToken, "failed", failureNote(error), started).catch(() => {});
    throw asRetryable(error);
  }
}

/** The `webhook` function: no Supabase JWT (verify_jwt = false); the signature authenticates PortOne. */
export function webhookHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "webhook",
    methods: ["POST"],
    auth: "none",
    handle: ({ request }) => receiveWebhook(deps, request),
  });
}
