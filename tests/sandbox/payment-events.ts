/**
 * State transitions shared by the REST routes and the customer simulation, each paired with the
 * webhook PortOne sends for it, so the two entry points cannot drift apart.
 */
import type { PortOnePayment } from "../../shared/infra/deps.ts";
import type { PortOne } from "../support/deps.ts";
import type { Random } from "./faults.ts";
import {
  type CancellationRecord,
  type PaymentRecord,
  type PaymentStatus,
  SandboxState,
  toPayment,
} from "./state.ts";
import type { WebhookDispatcher, WebhookMessage } from "./webhooks.ts";

export interface SandboxContext {
  state: SandboxState;
  webhooks: WebhookDispatcher;
  clock: () => Date;
  random: Random;
}

export type TransactionWebhookType =
  | "Transaction.Ready"
  | "Transaction.Paid"
  | "Transaction.VirtualAccountIssued"
  | "Transaction.Failed"
  | "Transaction.PayPending"
  | "Transaction.PartialCancelled"
  | "Transaction.Cancelled"
  | "Transaction.CancelPending";

export type BillingKeyWebhookType =
  | "BillingKey.Issued"
  | "BillingKey.Deleted"
  | "BillingKey.Failed"
  | "BillingKey.Updated";

export function now(ctx: SandboxContext): string {
  return ctx.clock().toISOString();
}

/** Moves a payment to `status`, stamping statusChangedAt/updatedAt from the sandbox clock. */
export function setStatus(ctx: SandboxContext, record: PaymentRecord, status: PaymentStatus): string {
  const at = now(ctx);
  record.status = status;
  record.statusChangedAt = at;
  record.updatedAt = at;
  return at;
}

export function transactionWebhook(
  type: TransactionWebhookType,
  timestamp: string,
  record: PaymentRecord,
  cancellationId: string | undefined,
): PortOne.Webhook.WebhookTransaction {
  const data = { paymentId: record.id, storeId: record.storeId, transactionId: record.transactionId };
  const cancelData = { ...data, cancellationId: cancellationId ?? "" };
  switch (type) {
    case "Transaction.Ready":
    case "Transaction.Paid":
    case "Transaction.VirtualAccountIssued":
    case "Transaction.Failed":
    case "Transaction.PayPending":
      return { type, timestamp, data };
    case "Transaction.PartialCancelled":
    case "Transaction.Cancelled":
    case "Transaction.CancelPending":
      return { type, timestamp, data: cancelData };
  }
}

export function emitPaymentWebhook(
  ctx: SandboxContext,
  record: PaymentRecord,
  type: TransactionWebhookType,
  options: { cancellationId?: string; trigger?: PortOnePayment.PaymentWebhookTrigger } = {},
): WebhookMessage {
  const payload = transactionWebhook(type, now(ctx), record, options.cancellationId);
  const message = ctx.webhooks.emit(
    { type: payload.type, timestamp: payload.timestamp, data: { ...payload.data } },
    {
      paymentKey: SandboxState.key(record.storeId, record.id),
      paymentStatus: record.status,
      trigger: options.trigger,
    },
  );
  record.webhookIds.push(message.id);
  return message;
}

export function emitBillingKeyWebhook(
  ctx: SandboxContext,
  type: BillingKeyWebhookType,
  billingKey: string,
  storeId: string,
): WebhookMessage {
  const timestamp = now(ctx);
  const data = { billingKey, storeId };
  let payload: PortOne.Webhook.WebhookBillingKey;
  switch (type) {
    case "BillingKey.Issued":
    case "BillingKey.Deleted":
    case "BillingKey.Failed":
    case "BillingKey.Updated":
      payload = { type, timestamp, data };
  }
  return ctx.webhooks.emit({ type: payload.type, timestamp: payload.timestamp, data: { ...payload.data } });
}

/** Books a succeeded cancellation: amounts, status, refund truth, and the webhook unless skipped. */
export function settleCancellation(
  ctx: SandboxContext,
  record: PaymentRecord,
  cancellation: CancellationRecord,
): void {
  const at = now(ctx);
  cancellation.status = "SUCCEEDED";
  cancellation.cancelledAt = at;
  record.cancelled += cancellation.totalAmount;
  record.cancelledTaxFree += cancellation.taxFreeAmount;
  record.cancelledAt = at;
  const status = record.cancelled >= record.total ? "CANCELLED" : "PARTIAL_CANCELLED";
  if (record.status !== status) setStatus(ctx, record, status);
  else record.updatedAt = at;
  if (record.method?.type === "PaymentMethodVirtualAccount") {
    record.method = { ...record.method, refundStatus: "COMPLETED" };
  }
  ctx.state.refunds.push({
    paymentId: record.id,
    storeId: record.storeId,
    cancellationId: cancellation.id,
    amount: cancellation.totalAmount,
    taxFreeAmount: cancellation.taxFreeAmount,
    reason: cancellation.reason,
    cancelledAt: at,
    ...(cancellation.refundAccount ? { refundAccount: { ...cancellation.refundAccount } } : {}),
  });
  if (!cancellation.skipWebhook) {
    emitPaymentWebhook(
      ctx,
      record,
      status === "CANCELLED" ? "Transaction.Cancelled" : "Transaction.PartialCancelled",
      { cancellationId: cancellation.id },
    );
  }
}

/** The balance a cancel may still take: REQUESTED cancellations already hold their share. */
export function cancellableAmounts(record: PaymentRecord): { amount: number; taxFree: number } {
  const held = record.cancellations.filter((c) => c.status === "REQUESTED");
  return {
    amount: record.total - record.cancelled - held.reduce((sum, c) => sum + c.totalAmount, 0),
    taxFree: record.taxFree - record.cancelledTaxFree - held.reduce((sum, c) => sum + c.taxFreeAmount, 0),
  };
}

/** The Payment as the API shows it, including the webhooks sent for it. */
export function paymentView(ctx: SandboxContext, record: PaymentRecord): PortOnePayment.Payment {
  const webhooks = record.webhookIds.flatMap((id) => {
    const message = ctx.webhooks.messages.get(id);
    return message ? [ctx.webhooks.toPaymentWebhook(message)] : [];
  });
  return toPayment(record, ctx.state.merchantId, webhooks);
}
