/**
 * A PortOne `Payment` reduced to what we store and compare, validated with zod (the SDK returns responses
 * unchecked). Objects are loose and enums open, because PortOne adds fields, statuses and method types
 * without notice: a status we do not know yet parses as `unrecognized` instead of failing.
 */
import { z } from "../infra/deps.ts";
import { responseSchema } from "./response-schema.ts";
import { isPaymentStatus, type PaymentStatus } from "../payments/status.ts";

const paymentSchema = responseSchema(() => {
  const money = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
  const timestamp = z.iso.datetime({ offset: true });

  const cancellationSchema = z.looseObject({
    id: z.string().min(1),
    status: z.string(),
    totalAmount: money,
    taxFreeAmount: money.optional(),
    reason: z.string().optional(),
    pgCancellationId: z.string().optional(),
    trigger: z.string().optional(),
    requestedAt: timestamp.optional(),
    cancelledAt: timestamp.optional(),
  });

  return z.looseObject({
    status: z.string(),
    id: z.string().min(1),
    storeId: z.string(),
    orderName: z.string(),
    currency: z.string(),
    statusChangedAt: timestamp,
    amount: z.looseObject({
      total: money,
      taxFree: money.default(0),
      paid: money.default(0),
      cancelled: money.default(0),
      cancelledTaxFree: money.default(0),
    }),
    channel: z.looseObject({
      type: z.string(),
      key: z.string().optional(),
      pgProvider: z.string().optional(),
    })
      .optional(),
    method: z.looseObject({ type: z.string() }).optional(),
    pgTxId: z.string().optional(),
    paidAt: timestamp.optional(),
    failedAt: timestamp.optional(),
    cancelledAt: timestamp.optional(),
    failure: z.looseObject({ reason: z.string().optional(), pgCode: z.string().optional() }).optional(),
    cancellations: z.array(cancellationSchema).optional(),
    receiptUrl: z.string().optional(),
  });
});

export type CancellationStatus = "REQUESTED" | "SUCCEEDED" | "FAILED";

export interface CancellationSnapshot {
  readonly portoneId: string;
  readonly status: CancellationStatus;
  readonly amount: number;
  readonly taxFreeAmount: number;
  readonly reason: string;
  readonly pgCancellationId: string | null;
  /** Who asked PortOne: API (a caller with our secret), CONSOLE, PORTONE_ADMIN, CHARGEBACK; null if unsaid. */
  readonly trigger: string | null;
  readonly requestedAt: string | null;
  readonly cancelledAt: string | null;
}

export interface VirtualAccount {
  readonly bank: string | null;
  readonly accountNumber: string;
  readonly holder: string | null;
  readonly expiresAt: string | null;
}

export interface PaymentSnapshot {
  readonly kind: "payment";
  readonly id: string;
  readonly status: PaymentStatus;
  readonly storeId: string;
  readonly orderName: string;
  readonly currency: string;
  readonly statusChangedAt: string;
  readonly totalAmount: number;
  readonly taxFreeAmount: number;
  /** amount.total once money was received (the basis PortOne cancels against), else 0. */
  readonly paidAmount: number;
  readonly cancelledAmount: number;
  readonly cancelledTaxFreeAmount: number;
  readonly channelType: "TEST" | "LIVE" | null;
  /** The channel key PortOne says the payment went through. */
  readonly channelKey: string | null;
  readonly pgProvider: string | null;
  readonly pgTxId: string | null;
  readonly methodType: string | null;
  readonly methodSummary: Record<string, unknown> | null;
  readonly virtualAccount: VirtualAccount | null;
  readonly paidAt: string | null;
  readonly failedAt: string | null;
  readonly cancelledAt: string | null;
  readonly failureReason: string | null;
  readonly cancellations: readonly CancellationSnapshot[];
  /** What we keep of PortOne's object: no customer data, raw PG response or billing key. */
  readonly stored: Record<string, unknown>;
}

export type ParsedPayment = PaymentSnapshot | {
  readonly kind: "unrecognized";
  readonly id: string;
  readonly status: string;
};

const methodTypes: Record<string, string> = {
  PaymentMethodCard: "CARD",
  PaymentMethodEasyPay: "EASY_PAY",
  PaymentMethodVirtualAccount: "VIRTUAL_ACCOUNT",
  PaymentMethodTransfer: "TRANSFER",
  PaymentMethodMobile: "MOBILE",
  PaymentMethodGiftCertificate: "GIFT_CERTIFICATE",
  PaymentMethodConvenienceStore: "CONVENIENCE_STORE",
  PaymentMethodCrypto: "CRYPTO",
};

/** Keeps only the last four digits of anything number-like. */
export function maskDigits(value: unknown): string | null {
  if (typeof value !== "string" || value.length === 0) return null;
  const digits = value.replace(/[^0-9]/g, "");
  return digits.length <= 4 ? "*".repeat(Math.max(digits.length, 4)) : `****${digits.slice(-4)}`;
}

function text(value: unknown): string | null {
  return typeof value === "string" && value.length > 0 ? value : null;
}

function summarizeMethod(method: Record<string, unknown> | undefined): Record<string, unknown> | null {
  if (!method) return null;
  const card = (method.card ?? {}) as Record<string, unknown>;
  switch (method.type) {
    case "PaymentMethodCard":
      return {
        issuer: text(card.issuer),
        brand: text(card.brand),
        cardType: text(card.type),
        ownerType: text(card.ownerType),
        numberMasked: maskDigits(card.number),
        installmentMonths: (method.installment as { month?: number } | undefined)?.month ?? null,
      };
    case "PaymentMethodEasyPay": {
      const inner = (method.easyPayMethod ?? {}) as Record<string, unknown>;
      return { provider: text(method.provider), innerMethod: text(inner.type) };
    }
    case "PaymentMethodVirtualAccount":
      return {
        bank: text(method.bank),
        accountType: text(method.accountType),
        refundStatus: text(method.refundStatus),
      };
    case "PaymentMethodTransfer":
      return { bank: text(method.bank) };
    default:
      return {};
  }
}

function cancellationStatus(value: string): CancellationStatus | null {
  return value === "REQUESTED" || value === "SUCCEEDED" || value === "FAILED" ? value : null;
}

export function parsePayment(raw: unknown): ParsedPayment {
  const payment = paymentSchema.parse(raw);
  if (!isPaymentStatus(payment.status)) {
    return { kind: "unrecognized", id: payment.id, status: payment.status };
  }
  const method = payment.method as Record<string, unknown> | undefined;
  const received = payment.paidAt !== undefined || payment.amount.paid > 0 || payment.amount.cancelled > 0;
  const virtualAccount: VirtualAccount | null = method?.type === "PaymentMethodVirtualAccount"
    ? {
      bank: text(method.bank),
      accountNumber: String(method.accountNumber ?? ""),
      holder: text(method.remitteeName),
      expiresAt: text(method.expiredAt),
    }
    : null;
  const channelType = payment.channel?.type === "LIVE" || payment.channel?.type === "TEST"
    ? payment.channel.type
    : null;
  const cancellations = (payment.cancellations ?? []).flatMap((c): CancellationSnapshot[] => {
    const status = cancellationStatus(c.status);
    return status
      ? [{
        portoneId: c.id,
        status,
        amount: c.totalAmount,
        taxFreeAmount: c.taxFreeAmount ?? 0,
        reason: c.reason ?? "",
        pgCancellationId: c.pgCancellationId ?? null,
        trigger: c.trigger ?? null,
        requestedAt: c.requestedAt ?? null,
        cancelledAt: c.cancelledAt ?? null,
      }]
      : [];
  });
  const methodType = method ? methodTypes[String(method.type)] ?? String(method.type) : null;
  const methodSummary = summarizeMethod(method);
  return {
    kind: "payment",
    id: payment.id,
    status: payment.status,
    storeId: payment.storeId,
    orderName: payment.orderName,
    currency: payment.currency,
    statusChangedAt: payment.statusChangedAt,
    totalAmount: payment.amount.total,
    taxFreeAmount: payment.amount.taxFree,
    paidAmount: received ? payment.amount.total : 0,
    cancelledAmount: payment.amount.cancelled,
    cancelledTaxFreeAmount: payment.amount.cancelledTaxFree,
    channelType,
    channelKey: payment.channel?.key ?? null,
    pgProvider: payment.channel?.pgProvider ?? null,
    pgTxId: payment.pgTxId ?? null,
    methodType,
    methodSummary,
    virtualAccount,
    paidAt: payment.paidAt ?? null,
    failedAt: payment.failedAt ?? null,
    cancelledAt: payment.cancelledAt ?? null,
    failureReason: payment.failure?.reason ?? payment.failure?.pgCode ?? null,
    cancellations,
    stored: {
      id: payment.id,
      status: payment.status,
      storeId: payment.storeId,
      orderName: payment.orderName,
      currency: payment.currency,
      amount: payment.amount,
      statusChangedAt: payment.statusChangedAt,
      channel: { type: channelType, pgProvider: payment.channel?.pgProvider ?? null },
      method: methodType === null ? null : { type: methodType, ...methodSummary },
      pgTxId: payment.pgTxId ?? null,
      paidAt: payment.paidAt ?? null,
      failedAt: payment.failedAt ?? null,
      cancelledAt: payment.cancelledAt ?? null,
      failure: payment.failure
        ? { reason: payment.failure.reason ?? null, pgCode: payment.failure.pgCode ?? null }
        : null,
      cancellations,
      receiptUrl: payment.receiptUrl ?? null,
    },
  };
}
