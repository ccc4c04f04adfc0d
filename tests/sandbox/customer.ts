/**
 * The customer side PortOne hides from merchants: the browser payment window, bank deposits,
 * billing-key issuance and identity verification. These drive the sandbox into the states our
 * server code then observes through the REST API and webhooks.
 */
import type { PortOneCommon, PortOnePayment } from "../../shared/infra/deps.ts";
import {
  emitBillingKeyWebhook,
  emitPaymentWebhook,
  now,
  paymentView,
  recordPaymentEvent,
  type SandboxContext,
  setStatus,
  settleCancellation,
} from "./payment-events.ts";
import { type PaymentRecord, SandboxError, SandboxState, type VerifiedCustomerInput } from "./state.ts";

export interface PayInput {
  paymentId: string;
  storeId?: string;
  channel: "TEST" | "LIVE";
  method: "CARD" | "EASY_PAY" | "VIRTUAL_ACCOUNT";
  orderName: string;
  totalAmount: number;
  taxFreeAmount?: number;
  currency: string;
  customerId?: string;
  /** EASY_PAY only; KAKAOPAY when omitted. */
  easyPayProvider?: string;
  /** Later cancels answer REQUESTED and wait for `completeCancellation`. */
  asyncCancel?: boolean;
}

export interface IssueBillingKeyInput {
  customerId: string;
  storeId?: string;
  channel?: "TEST" | "LIVE";
  card?: { issuer?: string; brand?: string; type?: string; number?: string };
  /** Every payment with this key is declined by the "PG" (502 PG_PROVIDER). */
  declinePayments?: boolean;
}

export interface CompleteIdentityVerificationInput {
  identityVerificationId?: string;
  storeId?: string;
  status?: "VERIFIED" | "READY" | "FAILED";
  customer: VerifiedCustomerInput;
}

export interface CompleteCancellationInput {
  paymentId: string;
  storeId?: string;
  /** The REQUESTED cancellation to finish; the oldest one when omitted. */
  cancellationId?: string;
  outcome: "SUCCEEDED" | "FAILED";
}

/** What the payment window does when the customer pays: PAID, VIRTUAL_ACCOUNT_ISSUED or FAILED. */
export function pay(ctx: SandboxContext, input: PayInput): PortOnePayment.Payment {
  const record = attempt(ctx, input, ["READY", "PAY_PENDING", "FAILED"]);
  const preRegistered = ctx.state.preRegistrations.get(SandboxState.key(record.storeId, record.id));
  const mismatch = preRegistered && [
    preRegistered.totalAmount !== undefined && preRegistered.totalAmount !== record.total
      ? `totalAmount ${record.total} ≠ pre-registered ${preRegistered.totalAmount}`
      : undefined,
    preRegistered.taxFreeAmount !== undefined && preRegistered.taxFreeAmount !== record.taxFree
      ? `taxFreeAmount ${record.taxFree} ≠ pre-registered ${preRegistered.taxFreeAmount}`
      : undefined,
    preRegistered.currency !== undefined && preRegistered.currency !== record.currency
      ? `currency ${record.currency} ≠ pre-registered ${preRegistered.currency}`
      : undefined,
  ].filter((reason) => reason !== undefined);
  if (mismatch && mismatch.length > 0) {
    record.failedAt = setStatus(ctx, record, "FAILED");
    record.failure = {
      reason: `사전 등록된 결제 정보와 일치하지 않습니다: ${mismatch.join(", ")}`,
      pgCode: "PRE_REGISTERED_INFO_MISMATCH",
      pgMessage: "pre-registered payment information does not match",
    };
    emitPaymentWebhook(ctx, record, "Transaction.Failed");
    return paymentView(ctx, record);
  }
  if (input.method === "VIRTUAL_ACCOUNT") {
    const issuedAt = setStatus(ctx, record, "VIRTUAL_ACCOUNT_ISSUED");
    record.method = {
      type: "PaymentMethodVirtualAccount",
      bank: "SHINHAN",
      accountNumber: digits(ctx, 14),
      accountType: "NORMAL",
      remitteeName: "샌드박스상점",
      issuedAt,
      expiredAt: new Date(ctx.clock().getTime() + 7 * 24 * 3600_000).toISOString(),
    };
    emitPaymentWebhook(ctx, record, "Transaction.VirtualAccountIssued");
  } else {
    record.paidAt = setStatus(ctx, record, "PAID");
    recordPaymentEvent(ctx, record);
    emitPaymentWebhook(ctx, record, "Transaction.Paid");
  }
  return paymentView(ctx, record);
}

/** The window opened but nothing was paid yet (READY, `Transaction.Ready`). */
export function openPaymentWindow(ctx: SandboxContext, input: PayInput): PortOnePayment.Payment {
  const record = attempt(ctx, input, ["READY", "FAILED"]);
  setStatus(ctx, record, "READY");
  emitPaymentWebhook(ctx, record, "Transaction.Ready");
  return paymentView(ctx, record);
}

/** An approval the PG finishes later (PAY_PENDING); settle it with `pay` or `failPayment`. */
export function setPayPending(
  ctx: SandboxContext,
  input: PayInput | string,
  storeId?: string,
): PortOnePayment.Payment {
  const record = typeof input === "string"
    ? existing(ctx, input, storeId, ["READY"])
    : attempt(ctx, input, ["READY", "FAILED"]);
  setStatus(ctx, record, "PAY_PENDING");
  emitPaymentWebhook(ctx, record, "Transaction.PayPending");
  return paymentView(ctx, record);
}

/** The customer wires the money to the issued virtual account. */
export function depositVirtualAccount(
  ctx: SandboxContext,
  paymentId: string,
  storeId?: string,
): PortOnePayment.Payment {
  const record = existing(ctx, paymentId, storeId, ["VIRTUAL_ACCOUNT_ISSUED"]);
  const expiredAt = record.method?.type === "PaymentMethodVirtualAccount"
    ? record.method.expiredAt
    : undefined;
  if (expiredAt !== undefined && Date.parse(expiredAt) <= ctx.clock().getTime()) {
    throw new SandboxError("VIRTUAL_ACCOUNT_EXPIRED", `the account of payment ${paymentId} has expired`);
  }
  record.paidAt = setStatus(ctx, record, "PAID");
  recordPaymentEvent(ctx, record);
  emitPaymentWebhook(ctx, record, "Transaction.Paid", { trigger: "VIRTUAL_ACCOUNT_DEPOSIT" });
  return paymentView(ctx, record);
}

/** The PG (or the customer) ends an open attempt in failure. */
export function failPayment(
  ctx: SandboxContext,
  paymentId: string,
  reason = "고객이 결제를 취소했습니다",
  storeId?: string,
): PortOnePayment.Payment {
  const record = existing(ctx, paymentId, storeId, ["READY", "PAY_PENDING", "VIRTUAL_ACCOUNT_ISSUED"]);
  record.failedAt = setStatus(ctx, record, "FAILED");
  record.failure = { reason, pgCode: "SANDBOX_FAILED", pgMessage: reason };
  emitPaymentWebhook(ctx, record, "Transaction.Failed");
  return paymentView(ctx, record);
}

export function issueBillingKey(ctx: SandboxContext, input: IssueBillingKeyInput): string {
  const storeId = input.storeId ?? ctx.state.mainStoreId;
  const store = ctx.state.store(storeId);
  const number = (input.card?.number ?? "5365101234561234").replace(/\D/g, "");
  if (number.length < 12) throw new SandboxError("INVALID_INPUT", "card number needs at least 12 digits");
  const billingKey = `billing-key-${crypto.randomUUID()}`;
  const at = now(ctx);
  ctx.state.billingKeys.set(SandboxState.key(storeId, billingKey), {
    billingKey,
    storeId,
    channel: input.channel === "LIVE" ? store.channels.live : store.channels.test,
    card: {
      publisher: input.card?.issuer ?? "KOOKMIN",
      issuer: input.card?.issuer ?? "KOOKMIN",
      brand: input.card?.brand ?? "LOCAL",
      type: input.card?.type ?? "CREDIT",
      ownerType: "PERSONAL",
      bin: number.slice(0, 6),
      name: "샌드박스카드",
      number: maskCardNumber(number),
    },
    customer: { id: input.customerId },
    requestedAt: at,
    issuedAt: at,
    declinePayments: input.declinePayments ?? false,
  });
  emitBillingKeyWebhook(ctx, "BillingKey.Issued", billingKey, storeId);
  return billingKey;
}

/** Keeps the first 6 and last 4 digits, as card receipts do. */
export function maskCardNumber(number: string): string {
  return number.slice(0, 6) + "*".repeat(Math.max(0, number.length - 10)) + number.slice(-4);
}

export function completeIdentityVerification(
  ctx: SandboxContext,
  input: CompleteIdentityVerificationInput,
): string {
  const storeId = input.storeId ?? ctx.state.mainStoreId;
  const store = ctx.state.store(storeId);
  const { customer } = input;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(customer.birthDate)) {
    throw new SandboxError("INVALID_INPUT", "birthDate must be yyyy-MM-dd");
  }
  if (!customer.name) throw new SandboxError("INVALID_INPUT", "customer.name is required");
  const id = input.identityVerificationId ?? `identity-verification-${crypto.randomUUID()}`;
  const key = SandboxState.key(storeId, id);
  const at = now(ctx);
  const previous = ctx.state.identityVerifications.get(key);
  const status = input.status ?? "VERIFIED";
  ctx.state.identityVerifications.set(key, {
    id,
    storeId,
    status,
    channel: store.channels.identity,
    customer: { ...customer },
    requestedAt: previous?.requestedAt ?? at,
    updatedAt: at,
    statusChangedAt: previous?.status === status ? previous.statusChangedAt : at,
    ...(status === "VERIFIED" ? { verifiedAt: at } : {}),
    pgTxId: previous?.pgTxId ?? `pg-iv-${crypto.randomUUID()}`,
  });
  return id;
}

/** Finishes a REQUESTED (async) cancellation the way the PG eventually does. */
export function completeCancellation(
  ctx: SandboxContext,
  input: CompleteCancellationInput,
): PortOnePayment.PaymentCancellation | undefined {
  const record = existing(ctx, input.paymentId, input.storeId, ["PAID", "PARTIAL_CANCELLED"]);
  const cancellation = record.cancellations.find((c) =>
    c.status === "REQUESTED" && (input.cancellationId === undefined || c.id === input.cancellationId)
  );
  if (!cancellation) throw new SandboxError("NOT_FOUND", "no REQUESTED cancellation matches");
  if (input.outcome === "SUCCEEDED") {
    settleCancellation(ctx, record, cancellation);
  } else {
    // A failed async cancel leaves the balance untouched; PortOne documents no webhook type for it.
    cancellation.status = "FAILED";
    record.updatedAt = now(ctx);
  }
  const view = paymentView(ctx, record);
  return "cancellations" in view
    ? view.cancellations?.find((c) => "id" in c && c.id === cancellation.id)
    : undefined;
}

function existing(
  ctx: SandboxContext,
  paymentId: string,
  storeId: string | undefined,
  allowed: PaymentRecord["status"][],
): PaymentRecord {
  const record = ctx.state.payment(storeId ?? ctx.state.mainStoreId, paymentId);
  if (!record) throw new SandboxError("NOT_FOUND", `payment ${paymentId} not found`);
  if (!allowed.includes(record.status)) {
    throw new SandboxError(
      "INVALID_STATE",
      `payment ${paymentId} is ${record.status}, expected ${allowed.join("|")}`,
    );
  }
  return record;
}

/** A new attempt on a paymentId: PortOne allows many attempts until one succeeds. */
function attempt(ctx: SandboxContext, input: PayInput, reusable: PaymentRecord["status"][]): PaymentRecord {
  const storeId = input.storeId ?? ctx.state.mainStoreId;
  const store = ctx.state.store(storeId);
  const taxFree = input.taxFreeAmount ?? 0;
  if (!input.paymentId) throw new SandboxError("INVALID_INPUT", "paymentId is required");
  if (!input.orderName) throw new SandboxError("INVALID_INPUT", "orderName is required");
  if (!input.currency) throw new SandboxError("INVALID_INPUT", "currency is required");
  if (!Number.isSafeInteger(input.totalAmount) || input.totalAmount <= 0) {
    throw new SandboxError("INVALID_INPUT", "totalAmount must be a positive integer");
  }
  if (!Number.isSafeInteger(taxFree) || taxFree < 0 || taxFree > input.totalAmount) {
    throw new SandboxError("INVALID_INPUT", "taxFreeAmount must be an integer within 0..totalAmount");
  }
  if (input.channel !== "TEST" && input.channel !== "LIVE") {
    throw new SandboxError("INVALID_INPUT", "channel must be TEST or LIVE");
  }
  if (!["CARD", "EASY_PAY", "VIRTUAL_ACCOUNT"].includes(input.method)) {
    throw new SandboxError("INVALID_INPUT", "method must be CARD, EASY_PAY or VIRTUAL_ACCOUNT");
  }
  const key = SandboxState.key(storeId, input.paymentId);
  const previous = ctx.state.payments.get(key);
  if (previous && !reusable.includes(previous.status)) {
    throw new SandboxError("ALREADY_PAID", `payment ${input.paymentId} is already ${previous.status}`);
  }
  const at = now(ctx);
  // Settling an open attempt keeps its transaction; a retry after FAILED is a new transaction.
  const sameTransaction = previous && previous.status !== "FAILED";
  const record: PaymentRecord = {
    seq: previous?.seq ?? ctx.state.nextSeq(),
    id: input.paymentId,
    storeId,
    transactionId: sameTransaction ? previous.transactionId : crypto.randomUUID(),
    status: previous?.status ?? "READY",
    channel: input.channel === "LIVE" ? store.channels.live : store.channels.test,
    methodType: input.method,
    method: methodFor(ctx, input),
    orderName: input.orderName,
    currency: input.currency as PortOneCommon.Currency,
    total: input.totalAmount,
    taxFree,
    cancelled: 0,
    cancelledTaxFree: 0,
    customer: input.customerId !== undefined ? { id: input.customerId } : {},
    requestedAt: sameTransaction ? previous.requestedAt : at,
    updatedAt: at,
    statusChangedAt: previous?.statusChangedAt ?? at,
    pgTxId: sameTransaction && previous.pgTxId ? previous.pgTxId : `pg-tx-${crypto.randomUUID()}`,
    cancellations: [],
    asyncCancel: input.asyncCancel ?? false,
    webhookIds: previous?.webhookIds ?? [],
  };
  ctx.state.payments.set(key, record);
  return record;
}

function methodFor(ctx: SandboxContext, input: PayInput): PortOnePayment.PaymentMethod | undefined {
  switch (input.method) {
    case "CARD":
      return {
        type: "PaymentMethodCard",
        card: {
          publisher: "KOOKMIN",
          issuer: "KOOKMIN",
          brand: "LOCAL",
          type: "CREDIT",
          ownerType: "PERSONAL",
          bin: "536510",
          name: "KB국민카드",
          number: maskCardNumber("5365101234561234"),
        },
        approvalNumber: digits(ctx, 8),
        installment: { month: 0, isInterestFree: false },
        pointUsed: false,
      };
    case "EASY_PAY":
      return { type: "PaymentMethodEasyPay", provider: input.easyPayProvider ?? "KAKAOPAY" };
    case "VIRTUAL_ACCOUNT":
      // The account appears when it is issued (see pay); until then there is no method.
      return undefined;
  }
}

function digits(ctx: SandboxContext, count: number): string {
  return Array.from({ length: count }, () => Math.floor(ctx.random() * 10)).join("");
}
