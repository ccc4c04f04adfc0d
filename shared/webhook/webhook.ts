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
 * 409 while another delivery of the same id (a billing-key event) is still being processed; 5xx for our
 * own failures (PortOne or the database unreachable during processing) so PortOne retries.
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
import {
  finish,
  type InboxFields,
  inboxFields,
  type InboxRow,
  readStatus,
  recordDelivery,
  recordFailedDelivery,
  recordUnprocessable,
  stringField,
  tryClaim,
  type WebhookOutcome,
} from "./inbox.ts";

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

/** How long a concurrent duplicate waits for the first delivery to finish before answering 409. */
const duplicateWaitMs = 5_000;

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
    await recordFailedDelivery(deps.sql, webhookId, fields, failureNote(error), started).catch(() => {});
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
      deps.sql,
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
  let row: InboxRow | undefined = await recordDelivery(deps.sql, webhookId, fields, leaseToken);
  if (row.lease_token !== leaseToken) {
    // Another delivery of this id: done already, or still running somewhere. Wait a little for the
    // running one rather than make PortOne retry; take over if it failed or its lease ran out.
    const deadline = Date.now() + duplicateWaitMs;
    const id = row.id;
    row = undefined;
    while (!row) {
      const status = await readStatus(deps.sql, id);
      if (status === "processed" || status === "ignored") {
        return json({ received: true, status: "duplicate" });
      }
      row = await tryClaim(deps.sql, id, leaseToken);
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
    await finish(deps.sql, row.id, leaseToken, outcome, note, started);
    if (outcome === "ignored") log("info", "webhook_ignored", { webhookId, type: event.type, reason: note });
    return json({ received: true, status: outcome });
  } catch (error) {
    await finish(deps.sql, row.id, leaseToken, "failed", failureNote(error), started).catch(() => {});
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
