/**
 * `webhook`: PortOne's deliveries, verified, recorded exactly once per `webhook-id`, and turned into a
 * re-fetch of the object they name. The body never changes our state by itself.
 *
 * Replies: 400 only when the signature or its headers fail; 200 for every verified delivery, including
 * those we ignore (unknown types, other stores, payments we never prepared) and redeliveries of processed
 * ids; 409 while another delivery of the same id is still being processed; 5xx for our own failures
 * (PortOne or the database unreachable during processing) so PortOne retries.
 */
import { AppError } from "../infra/errors.ts";
import { defineFunction, type EdgeFunction, json, readBodyText } from "../infra/http.ts";
import { sha256Hex } from "../infra/crypto.ts";
import { log } from "../infra/log.ts";
import { verifyWebhookSignature, WebhookVerificationError } from "../portone/gateway.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { syncPayment } from "../payments/sync.ts";
import { syncBillingKey } from "../billing/keys.ts";

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

interface VerifiedEvent {
  readonly type: string;
  readonly data: Record<string, unknown>;
}

interface InboxRow {
  id: number;
  status: string;
  lease_token: string | null;
}

/** Verifies with the current secret, then the previous one (rotation). */
async function verify(
  deps: AppDeps,
  rawBody: string,
  headers: Record<string, string>,
): Promise<VerifiedEvent> {
  let reason = "NO_SECRET_CONFIGURED";
  for (const secret of deps.config.portone.webhookSecrets) {
    try {
      const event = await verifyWebhookSignature(secret, rawBody, headers) as unknown;
      const shaped = event as { type?: unknown; data?: unknown };
      return {
        type: typeof shaped.type === "string" ? shaped.type : "",
        data: shaped.data !== null && typeof shaped.data === "object"
          ? shaped.data as Record<string, unknown>
          : {},
      };
    } catch (error) {
      // anything but a verification failure (e.g. a malformed secret) is our misconfiguration: 500
      if (!(error instanceof WebhookVerificationError)) throw error;
      reason = error.reason;
    }
  }
  log("warn", "webhook_rejected", {
    reason,
    webhookId: headers["webhook-id"]?.slice(0, 100) ?? null,
    bodyBytes: rawBody.length,
  });
  throw new AppError("invalid_signature", "Webhook signature verification failed", { details: { reason } });
}

function stringField(data: Record<string, unknown>, key: string): string | null {
  const value = data[key];
  return typeof value === "string" && value.length > 0 ? value : null;
}

/** Records the delivery and claims it when nobody else is processing it, in one statement. */
async function recordDelivery(
  deps: AppDeps,
  webhookId: string,
  event: VerifiedEvent,
  rawBody: string,
  timestamp: string | undefined,
  leaseToken: string,
): Promise<InboxRow> {
  const seconds = Number(timestamp);
  const webhookTimestamp = Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : null;
  // billing keys charge cards: the inbox keeps the payload, but never the key itself
  const payload = {
    ...event,
    data: { ...event.data, ...("billingKey" in event.data ? { billingKey: "[redacted]" } : {}) },
  };
  const [row] = await deps.sql<InboxRow[]>`
    insert into public.webhook_logs as w
      (webhook_id, webhook_timestamp, event_type, payment_id, store_id, payload, payload_sha256, status,
       lease_token, lease_expires_at)
    values
      (${webhookId}, ${webhookTimestamp}, ${event.type.slice(0, 100)}, ${
    stringField(event.data, "paymentId")
  },
       ${stringField(event.data, "storeId")}, ${deps.sql.json(payload as never)}, ${await sha256Hex(rawBody)},
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

async function dispatch(
  deps: AppDeps,
  event: VerifiedEvent,
  webhookId: string,
): Promise<[WebhookOutcome, string | null]> {
  const storeId = stringField(event.data, "storeId");
  if (transactionTypes.has(event.type) || billingKeyTypes.has(event.type)) {
    if (storeId !== deps.config.portone.storeId) return ["ignored", "other_store"];
  }
  if (transactionTypes.has(event.type)) {
    const paymentId = stringField(event.data, "paymentId");
    if (!paymentId) return ["ignored", "no_payment_id"];
    const result = await syncPayment(
      deps,
      paymentId,
      "webhook",
      { webhookId },
    );
    return result.outcome === "not_ours" ? ["ignored", "unknown_payment"] : ["processed", null];
  }
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
  const event = await verify(deps, rawBody, headers);
  const webhookId = headers["webhook-id"]!;

  const leaseToken = crypto.randomUUID();
  let row: InboxRow | undefined = await recordDelivery(
    deps,
    webhookId,
    event,
    rawBody,
    headers["webhook-timestamp"],
    leaseToken,
  );
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
    const [outcome, note] = await dispatch(deps, event, webhookId);
    await finish(deps, row.id, leaseToken, outcome, note, started);
    if (outcome === "ignored") log("info", "webhook_ignored", { webhookId, type: event.type, reason: note });
    return json({ received: true, status: outcome });
  } catch (error) {
    const note = error instanceof AppError ? error.code : error instanceof Error ? error.name : "error";
    await finish(deps, row.id, leaseToken, "failed", note, started).catch(() => {});
    if (error instanceof AppError && error.status < 500) {
      // a refusal while processing is still our failure to apply a verified event: let PortOne retry
      throw new AppError("internal", "The webhook could not be applied", { cause: error });
    }
    throw error;
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
