/**
 * What a merchant's staff do in PortOne's console, behind our back: refund a payment (whole or part,
 * performed at once or left REQUESTED for an asynchronous PG), and what time does to a virtual account
 * (its deposit deadline passes). Our server only ever learns of these through the REST API, the payment
 * event log and webhooks.
 */
import type { PortOnePayment } from "../../shared/infra/deps.ts";
import {
  cancellableAmounts,
  emitPaymentWebhook,
  now,
  paymentView,
  type SandboxContext,
  settleCancellation,
} from "./payment-events.ts";
import { type CancellationRecord, SandboxError, vatOf } from "./state.ts";

export interface ConsoleCancelInput {
  paymentId: string;
  storeId?: string;
  /** The whole cancellable balance when omitted. */
  amount?: number;
  reason?: string;
  /** Left REQUESTED (an asynchronous PG), to be finished with `completeCancellation`. */
  pending?: boolean;
}

/** A refund made in PortOne's console: no Idempotency-Key, no currentCancellableAmount check. */
export function consoleCancel(ctx: SandboxContext, input: ConsoleCancelInput): PortOnePayment.Payment {
  const record = ctx.state.payment(input.storeId ?? ctx.state.mainStoreId, input.paymentId);
  if (!record) throw new SandboxError("NOT_FOUND", `payment ${input.paymentId} not found`);
  if (record.status !== "PAID" && record.status !== "PARTIAL_CANCELLED") {
    throw new SandboxError("INVALID_STATE", `payment ${input.paymentId} is ${record.status}`);
  }
  const cancellable = cancellableAmounts(record);
  const amount = input.amount ?? cancellable.amount;
  if (!Number.isSafeInteger(amount) || amount <= 0 || amount > cancellable.amount) {
    throw new SandboxError("INVALID_INPUT", `amount must be within 1..${cancellable.amount}`);
  }
  const taxableLeft = cancellable.amount - cancellable.taxFree;
  const taxFree = Math.max(0, amount - taxableLeft);
  const cancellation: CancellationRecord = {
    status: "REQUESTED",
    id: `cancellation-${crypto.randomUUID()}`,
    pgCancellationId: `pg-cancel-${crypto.randomUUID()}`,
    totalAmount: amount,
    taxFreeAmount: taxFree,
    vatAmount: vatOf(amount, taxFree),
    reason: input.reason ?? "콘솔 환불",
    requestedAt: now(ctx),
    skipWebhook: false,
    trigger: "CONSOLE",
  };
  record.cancellations.push(cancellation);
  record.updatedAt = now(ctx);
  if (input.pending) {
    emitPaymentWebhook(ctx, record, "Transaction.CancelPending", { cancellationId: cancellation.id });
  } else {
    settleCancellation(ctx, record, cancellation);
  }
  return paymentView(ctx, record);
}

/** The deposit deadline of an issued virtual account passes now: later deposits are refused. */
export function expireVirtualAccount(
  ctx: SandboxContext,
  paymentId: string,
  storeId?: string,
): PortOnePayment.Payment {
  const record = ctx.state.payment(storeId ?? ctx.state.mainStoreId, paymentId);
  if (!record) throw new SandboxError("NOT_FOUND", `payment ${paymentId} not found`);
  if (record.status !== "VIRTUAL_ACCOUNT_ISSUED" || record.method?.type !== "PaymentMethodVirtualAccount") {
    throw new SandboxError("INVALID_STATE", `payment ${paymentId} is not an issued virtual account`);
  }
  record.method = { ...record.method, expiredAt: now(ctx) };
  return paymentView(ctx, record);
}
