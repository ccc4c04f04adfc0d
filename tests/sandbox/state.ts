/**
 * The sandbox's single source of truth: stores and channels, payments, billing keys, identity
 * verifications, idempotency records, refunds and the request log. Records are kept in an internal
 * shape and turned into the SDK's types on the way out, so `deno check` proves every response shape.
 */
import { bankCodes } from "../../shared/portone/banks.ts";
import type {
  PortOneBillingKey,
  PortOneCommon,
  PortOneIdentityVerification,
  PortOnePayment,
} from "../../shared/infra/deps.ts";

/** An error answered as PortOne does: `status` + `{ type, message, ...extra }`. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly extra: Record<string, unknown>;

  constructor(status: number, type: string, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.extra = extra;
  }

  toBody(): Record<string, unknown> {
    return { type: this.type, message: this.message, ...this.extra };
  }
}

/** Misuse of the customer simulation (not a PortOne API answer). */
export class SandboxError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "SandboxError";
    this.code = code;
  }
}

export interface SandboxChannel extends PortOneCommon.SelectedChannel {
  id: string;
  key: string;
  name: string;
}

export interface StoreChannels {
  test: SandboxChannel;
  live: SandboxChannel;
  identity: SandboxChannel;
}

export interface StoreRecord {
  id: string;
  channels: StoreChannels;
}

/** The entity statuses (the list filter says PENDING where the entity says PAY_PENDING). */
export type PaymentStatus =
  | "READY"
  | "PAY_PENDING"
  | "VIRTUAL_ACCOUNT_ISSUED"
  | "PAID"
  | "FAILED"
  | "PARTIAL_CANCELLED"
  | "CANCELLED";

export interface RefundAccount {
  bank: PortOneCommon.Bank;
  number: string;
  holderName: string;
  holderPhoneNumber?: string;
}

export interface CancellationRecord {
  status: "SUCCEEDED" | "REQUESTED" | "FAILED";
  id: string;
  pgCancellationId: string;
  totalAmount: number;
  taxFreeAmount: number;
  vatAmount: number;
  reason: string;
  requestedAt: string;
  cancelledAt?: string;
  refundAccount?: RefundAccount;
  skipWebhook: boolean;
  /** Who asked: our API caller, or an admin in PortOne's console. */
  trigger?: "API" | "CONSOLE";
}

export interface PaymentRecord {
  /** Creation order; breaks ties between equal timestamps and backs the list cursor. */
  seq: number;
  id: string;
  storeId: string;
  transactionId: string;
  status: PaymentStatus;
  channel: SandboxChannel;
  method?: PortOnePayment.PaymentMethod;
  methodType: "CARD" | "EASY_PAY" | "VIRTUAL_ACCOUNT";
  orderName: string;
  currency: PortOneCommon.Currency;
  total: number;
  taxFree: number;
  cancelled: number;
  cancelledTaxFree: number;
  customer: PortOneCommon.Customer;
  requestedAt: string;
  updatedAt: string;
  statusChangedAt: string;
  paidAt?: string;
  failedAt?: string;
  failure?: PortOnePayment.PaymentFailure;
  cancelledAt?: string;
  pgTxId?: string;
  billingKey?: string;
  cancellations: CancellationRecord[];
  /** Cancels answer REQUESTED and wait for a control call, like Triple-A style async PGs. */
  asyncCancel: boolean;
  /** Webhook ids sent for this payment, oldest first (resend-webhook defaults to the last). */
  webhookIds: string[];
}

export interface PreRegistration {
  totalAmount?: number;
  taxFreeAmount?: number;
  currency?: string;
}

export interface BillingKeyRecord {
  billingKey: string;
  storeId: string;
  channel: SandboxChannel;
  card: PortOneCommon.Card;
  customer: PortOneCommon.Customer;
  issuedAt: string;
  requestedAt: string;
  deletedAt?: string;
  declinePayments: boolean;
}

export interface VerifiedCustomerInput {
  id?: string;
  name: string;
  birthDate: string;
  gender: PortOneCommon.Gender;
  phoneNumber: string;
  operator: PortOneIdentityVerification.IdentityVerificationOperator;
  ci: string;
  di: string;
  isForeigner: boolean;
}

export interface IdentityVerificationRecord {
  id: string;
  storeId: string;
  status: "READY" | "VERIFIED" | "FAILED";
  channel: SandboxChannel;
  customer: VerifiedCustomerInput;
  requestedAt: string;
  updatedAt: string;
  statusChangedAt: string;
  verifiedAt?: string;
  pgTxId: string;
}

/** One successful refund as the bank would see it. */
export interface RefundRecord {
  paymentId: string;
  storeId: string;
  cancellationId: string;
  amount: number;
  taxFreeAmount: number;
  reason: string;
  cancelledAt: string;
  refundAccount?: RefundAccount;
}

export interface RequestLogEntry {
  at: string;
  method: string;
  path: string;
  query: string;
  operation: string | undefined;
  /** HTTP status, or `"reset"` / `"hang"` when no response was written. */
  status: number | "reset" | "hang";
  idempotencyKey?: string;
  /** Whether the answer was replayed from an idempotency record. */
  replayed: boolean;
  fault?: string;
}

/** One entry of PortOne's payment event log (`GET /payment-events-by-cursor`), frozen when it happened. */
export interface PaymentEventRecord {
  /** Creation order; backs the cursor. */
  seq: number;
  storeId: string;
  createdAtMs: number;
  event: PortOnePayment.PaymentEvent;
}

export interface IdempotencyRecord {
  fingerprint: string;
  createdAtMs: number;
  state: "in-flight" | "done";
  status?: number;
  body?: string;
}

export class SandboxState {
  readonly merchantId: string;
  readonly mainStoreId: string;
  readonly stores = new Map<string, StoreRecord>();
  readonly payments = new Map<string, PaymentRecord>();
  readonly preRegistrations = new Map<string, PreRegistration>();
  readonly billingKeys = new Map<string, BillingKeyRecord>();
  readonly identityVerifications = new Map<string, IdentityVerificationRecord>();
  readonly idempotency = new Map<string, IdempotencyRecord>();
  readonly refunds: RefundRecord[] = [];
  readonly paymentEvents: PaymentEventRecord[] = [];
  readonly requests: RequestLogEntry[] = [];
  #seq = 0;

  constructor(mainStoreId: string, otherStoreIds: string[]) {
    this.merchantId = `merchant-${crypto.randomUUID()}`;
    this.mainStoreId = mainStoreId;
    for (const id of [mainStoreId, ...otherStoreIds]) this.stores.set(id, { id, channels: makeChannels() });
  }

  nextSeq(): number {
    return ++this.#seq;
  }

  store(storeId: string): StoreRecord {
    const store = this.stores.get(storeId);
    if (!store) throw new SandboxError("UNKNOWN_STORE", `store ${storeId} does not belong to this merchant`);
    return store;
  }

  /** Resources are keyed per store: the same paymentId in two stores is two payments. */
  static key(storeId: string, id: string): string {
    return `${storeId}\u0000${id}`;
  }

  payment(storeId: string, paymentId: string): PaymentRecord | undefined {
    return this.payments.get(SandboxState.key(storeId, paymentId));
  }

  findChannel(storeId: string, channelKey: string): SandboxChannel | undefined {
    const { channels } = this.store(storeId);
    return [channels.test, channels.live, channels.identity].find((channel) => channel.key === channelKey);
  }
}

function makeChannels(): StoreChannels {
  const channel = (type: "TEST" | "LIVE", pgProvider: string, name: string): SandboxChannel => ({
    type,
    id: `channel-id-${crypto.randomUUID()}`,
    key: `channel-key-${crypto.randomUUID()}`,
    name,
    pgProvider,
    pgMerchantId: `${pgProvider.toLowerCase()}-${type.toLowerCase()}-mid`,
  });
  return {
    test: channel("TEST", "TOSSPAYMENTS", "sandbox toss (test)"),
    live: channel("LIVE", "TOSSPAYMENTS", "sandbox toss (live)"),
    identity: channel("TEST", "DANAL", "sandbox danal identity verification"),
  };
}

/** VAT PortOne derives when none is given: 1/11 of the taxable part. */
export function vatOf(amount: number, taxFree: number): number {
  return Math.floor((amount - taxFree) / 11);
}

/** The payment's amounts as the API reports them. */
export function amountOf(record: PaymentRecord): PortOnePayment.PaymentAmount {
  const vat = vatOf(record.total, record.taxFree);
  return {
    total: record.total,
    taxFree: record.taxFree,
    vat,
    supply: record.total - record.taxFree - vat,
    discount: 0,
    paid: record.status === "PAID" || record.status === "PARTIAL_CANCELLED" || record.status === "CANCELLED"
      ? record.total
      : 0,
    cancelled: record.cancelled,
    cancelledTaxFree: record.cancelledTaxFree,
  };
}

export function toPayment(
  record: PaymentRecord,
  merchantId: string,
  webhooks?: PortOnePayment.PaymentWebhook[],
): PortOnePayment.Payment {
  const amount = amountOf(record);
  const common = {
    id: record.id,
    transactionId: record.transactionId,
    merchantId,
    storeId: record.storeId,
    channel: { ...record.channel },
    version: "V2",
    requestedAt: record.requestedAt,
    updatedAt: record.updatedAt,
    statusChangedAt: record.statusChangedAt,
    orderName: record.orderName,
    amount,
    currency: record.currency,
    customer: { ...record.customer },
    ...(record.method ? { method: structuredClone(record.method) } : {}),
    ...(record.billingKey ? { billingKey: record.billingKey } : {}),
    ...(webhooks && webhooks.length > 0 ? { webhooks } : {}),
  };
  const cancellations = record.cancellations.map(toCancellation);
  switch (record.status) {
    case "READY":
      return { ...common, status: "READY" } satisfies PortOnePayment.ReadyPayment;
    case "PAY_PENDING":
      return {
        ...common,
        status: "PAY_PENDING",
        pgTxId: record.pgTxId,
      } satisfies PortOnePayment.PayPendingPayment;
    case "VIRTUAL_ACCOUNT_ISSUED":
      return {
        ...common,
        status: "VIRTUAL_ACCOUNT_ISSUED",
        pgTxId: record.pgTxId,
      } satisfies PortOnePayment.VirtualAccountIssuedPayment;
    case "PAID":
      return {
        ...common,
        status: "PAID",
        paidAt: must(record.paidAt, "paidAt"),
        pgTxId: record.pgTxId,
        receiptUrl: `https://sandbox.invalid/receipts/${encodeURIComponent(record.transactionId)}`,
        disputes: [],
        ...(cancellations.length > 0 ? { cancellations } : {}),
      } satisfies PortOnePayment.PaidPayment;
    case "FAILED":
      return {
        ...common,
        status: "FAILED",
        failedAt: must(record.failedAt, "failedAt"),
        failure: { ...record.failure },
      } satisfies PortOnePayment.FailedPayment;
    case "PARTIAL_CANCELLED":
      return {
        ...common,
        status: "PARTIAL_CANCELLED",
        paidAt: record.paidAt,
        pgTxId: record.pgTxId,
        cancellations,
        cancelledAt: must(record.cancelledAt, "cancelledAt"),
      } satisfies PortOnePayment.PartialCancelledPayment;
    case "CANCELLED":
      return {
        ...common,
        status: "CANCELLED",
        paidAt: record.paidAt,
        pgTxId: record.pgTxId,
        cancellations,
        cancelledAt: must(record.cancelledAt, "cancelledAt"),
      } satisfies PortOnePayment.CancelledPayment;
  }
}

export function toCancellation(record: CancellationRecord): PortOnePayment.PaymentCancellation {
  const common = {
    id: record.id,
    pgCancellationId: record.pgCancellationId,
    totalAmount: record.totalAmount,
    taxFreeAmount: record.taxFreeAmount,
    vatAmount: record.vatAmount,
    reason: record.reason,
    requestedAt: record.requestedAt,
    trigger: record.trigger ?? "API",
    ...(record.cancelledAt ? { cancelledAt: record.cancelledAt } : {}),
  };
  switch (record.status) {
    case "SUCCEEDED":
      return { ...common, status: "SUCCEEDED" } satisfies PortOnePayment.SucceededPaymentCancellation;
    case "REQUESTED":
      return { ...common, status: "REQUESTED" } satisfies PortOnePayment.RequestedPaymentCancellation;
    case "FAILED":
      return { ...common, status: "FAILED" } satisfies PortOnePayment.FailedPaymentCancellation;
  }
}

export function toBillingKeyInfo(
  record: BillingKeyRecord,
  merchantId: string,
): PortOneBillingKey.BillingKeyInfo {
  const common = {
    billingKey: record.billingKey,
    merchantId,
    storeId: record.storeId,
    methods: [{ type: "BillingKeyPaymentMethodCard", card: { ...record.card } }],
    channels: [{ ...record.channel }],
    customer: { ...record.customer },
    requestedAt: record.requestedAt,
    issuedAt: record.issuedAt,
  } satisfies Omit<PortOneBillingKey.IssuedBillingKeyInfo, "status">;
  if (record.deletedAt !== undefined) {
    return {
      ...common,
      status: "DELETED",
      deletedAt: record.deletedAt,
    } satisfies PortOneBillingKey.DeletedBillingKeyInfo;
  }
  return { ...common, status: "ISSUED" } satisfies PortOneBillingKey.IssuedBillingKeyInfo;
}

export function toIdentityVerification(
  record: IdentityVerificationRecord,
): PortOneIdentityVerification.IdentityVerification {
  const common = {
    id: record.id,
    channel: { ...record.channel },
    requestedAt: record.requestedAt,
    updatedAt: record.updatedAt,
    statusChangedAt: record.statusChangedAt,
    version: "V2",
  };
  const [year, month, day] = record.customer.birthDate.split("-");
  const requestedCustomer: PortOneIdentityVerification.IdentityVerificationRequestedCustomer = {
    ...(record.customer.id !== undefined ? { id: record.customer.id } : {}),
    name: record.customer.name,
    phoneNumber: record.customer.phoneNumber,
    ...(year && month && day ? { birthYear: year, birthMonth: month, birthDay: day } : {}),
  };
  switch (record.status) {
    case "READY":
      return {
        ...common,
        status: "READY",
        requestedCustomer,
      } satisfies PortOneIdentityVerification.ReadyIdentityVerification;
    case "FAILED":
      return {
        ...common,
        status: "FAILED",
        requestedCustomer,
        pgTxId: record.pgTxId,
        failure: {
          reason: "본인인증에 실패했습니다 (sandbox)",
          pgCode: "FAILED",
          pgMessage: "sandbox failure",
        },
      } satisfies PortOneIdentityVerification.FailedIdentityVerification;
    case "VERIFIED": {
      const { customer } = record;
      return {
        ...common,
        status: "VERIFIED",
        verifiedAt: must(record.verifiedAt, "verifiedAt"),
        pgTxId: record.pgTxId,
        pgRawResponse: JSON.stringify({ sandbox: true, result: "OK" }),
        verifiedCustomer: {
          ...(customer.id !== undefined ? { id: customer.id } : {}),
          name: customer.name,
          ci: customer.ci,
          di: customer.di,
          gender: customer.gender,
          birthDate: customer.birthDate,
          phoneNumber: customer.phoneNumber,
          operator: customer.operator,
          isForeigner: customer.isForeigner,
        },
      } satisfies PortOneIdentityVerification.VerifiedIdentityVerification;
    }
  }
}

function must<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`sandbox invariant broken: ${name} missing`);
  return value;
}

/** Bank codes from the spec's `Bank` enum (kept once, in shared/portone/banks.ts); the SDK's `Bank` type is open. */
export const BANKS: readonly string[] = bankCodes;
