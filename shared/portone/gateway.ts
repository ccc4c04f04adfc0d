/**
 * The only module that imports the PortOne SDK. It adds what the SDK lacks (timeouts, Idempotency-Key
 * headers) and translates every failure into either a `PortOneRefusal` (PortOne answered with a documented
 * `data.type`: the caller decides what it means) or an `AppError` (`portone_unavailable`, retryable, when
 * the outcome is unknown: network errors, timeouts, non-JSON bodies, undocumented 5xx).
 *
 * The SDK's API clients are loaded by the first call, not at boot: a request that is refused before it
 * reaches PortOne (auth, validation, a bad webhook signature) never pays for them.
 *
 * The SDK reads `fetch` from globalThis on every call and accepts no headers or signal, so calls run inside
 * an AsyncLocalStorage context that a fetch hook reads: requests to the PortOne origin made within a call
 * get its AbortSignal and Idempotency-Key. Nothing else is touched.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  loadPortOneClients,
  loadPortOneWebhook,
  type PortOneBillingKey,
  type PortOneCommon,
  type PortOneIdentityVerification,
  type PortOnePayment,
  type PortOneWebhook,
} from "../infra/deps.ts";
import { AppError } from "../infra/errors.ts";
import { log } from "../infra/log.ts";

export type Payment = PortOnePayment.Payment;
export type PaymentCancellation = PortOnePayment.PaymentCancellation;
export type PaymentEvent = PortOnePayment.PaymentEvent;
export type BillingKeyInfo = PortOneBillingKey.BillingKeyInfo;
export type IdentityVerification = PortOneIdentityVerification.IdentityVerification;
export type Bank = PortOneCommon.Bank;
export type Currency = PortOneCommon.Currency;

/** The SDK's webhook module, loaded by the first signature check (only the webhook function makes any). */
let webhookModule: typeof PortOneWebhook | undefined;

/** The SDK's Standard Webhooks check: the parsed body, or a WebhookVerificationError (SyntaxError: not JSON). */
export async function verifyWebhookSignature(
  ...args: Parameters<typeof PortOneWebhook.verify>
): ReturnType<typeof PortOneWebhook.verify> {
  webhookModule ??= await loadPortOneWebhook();
  return await webhookModule.verify(...args);
}

/** Is this the SDK's signature refusal? Asked without loading the SDK: before the first check nothing is. */
export function isWebhookVerificationError(error: unknown): error is PortOneWebhook.WebhookVerificationError {
  return webhookModule !== undefined && error instanceof webhookModule.WebhookVerificationError;
}

type PortOneClients = Awaited<ReturnType<typeof loadPortOneClients>>;

/**
 * What the SDK throws when PortOne answered with an error body: the base class of each API group we call
 * (the common RestError is exported only by the SDK's root module, which we do not load). A call into
 * another API group adds that group's error class here.
 */
function isRestError(sdk: PortOneClients, error: unknown): error is { data?: unknown } {
  return error instanceof sdk.PaymentError || error instanceof sdk.BillingKeyError ||
    error instanceof sdk.IdentityVerificationError;
}

/** PortOne answered, with one of its documented refusal types (`data.type`). */
export class PortOneRefusal extends Error {
  readonly type: string;
  readonly operation: string;
  readonly pgCode: string | undefined;
  readonly pgMessage: string | undefined;

  constructor(
    operation: string,
    data: { type?: unknown; message?: unknown; pgCode?: unknown; pgMessage?: unknown },
  ) {
    super(typeof data.message === "string" ? data.message : `PortOne refused ${operation}`);
    this.name = "PortOneRefusal";
    this.operation = operation;
    this.type = String(data.type);
    this.pgCode = typeof data.pgCode === "string" ? data.pgCode : undefined;
    this.pgMessage = typeof data.pgMessage === "string" ? data.pgMessage : undefined;
  }
}

/** `data.type` values PortOne documents; anything else is treated as an outage with an unknown outcome. */
const documentedRefusals = new Set([
  "UNAUTHORIZED",
  "FORBIDDEN",
  "INVALID_REQUEST",
  "PAYMENT_NOT_FOUND",
  "ALREADY_PAID",
  "PAYMENT_NOT_PAID",
  "PAYMENT_ALREADY_CANCELLED",
  "ALREADY_PAID_OR_WAITING",
  "PAYMENT_NOT_WAITING_FOR_DEPOSIT",
  "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN",
  "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
  "CANCEL_TAX_FREE_AMOUNT_EXCEEDS_CANCELLABLE_TAX_FREE_AMOUNT",
  "CANCEL_TAX_AMOUNT_EXCEEDS_CANCELLABLE_TAX_AMOUNT",
  "SUM_OF_PARTS_EXCEEDS_CANCEL_AMOUNT",
  "SUM_OF_PARTS_EXCEEDS_TOTAL_AMOUNT",
  "NEGATIVE_PROMOTION_ADJUSTED_CANCEL_AMOUNT",
  "PROMOTION_DISCOUNT_RETAIN_OPTION_SHOULD_NOT_BE_CHANGED",
  "PROMOTION_PAY_METHOD_DOES_NOT_MATCH",
  "DISCOUNT_AMOUNT_EXCEEDS_TOTAL_AMOUNT",
  "PAYMENT_CANCELLATION_NOT_FOUND",
  "PAYMENT_CANCELLATION_NOT_PENDING",
  "INFORMATION_MISMATCH",
  "PG_PROVIDER",
  "CHANNEL_NOT_FOUND",
  "CHANNEL_SPECIFIC",
  "MAX_TRANSACTION_COUNT_REACHED",
  "BILLING_KEY_NOT_FOUND",
  "BILLING_KEY_ALREADY_DELETED",
  "BILLING_KEY_NOT_ISSUED",
  "BILLING_KEY_ALREADY_ISSUED",
  "PAYMENT_SCHEDULE_ALREADY_EXISTS",
  "WEBHOOK_NOT_FOUND",
  "MAX_WEBHOOK_RETRY_COUNT_REACHED",
  "IDENTITY_VERIFICATION_NOT_FOUND",
  "IDENTITY_VERIFICATION_ALREADY_VERIFIED",
  "IDENTITY_VERIFICATION_NOT_SENT",
  "IDENTITY_VERIFICATION_ALREADY_SENT",
  "PAYMENT_SCHEDULE_NOT_FOUND",
  "PAYMENT_SCHEDULE_ALREADY_PROCESSED",
  "PAYMENT_SCHEDULE_ALREADY_REVOKED",
  "IDEMPOTENCY_OUTSTANDING_REQUEST",
]);

interface CallContext {
  readonly origin: string;
  readonly signal: AbortSignal;
  readonly idempotencyKey: string | undefined;
}

const callContext = new AsyncLocalStorage<CallContext>();
let fetchHookInstalled = false;

function installFetchHook(): void {
  if (fetchHookInstalled) return;
  fetchHookInstalled = true;
  const baseFetch = globalThis.fetch;
  globalThis.fetch = (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const context = callContext.getStore();
    if (!context) return baseFetch(input, init);
    const url = input instanceof Request ? input.url : String(input);
    if (new URL(url).origin !== context.origin) return baseFetch(input, init);
    const headers = new Headers(init?.headers);
    // RFC 8941 string, as PortOne documents for the header
    if (context.idempotencyKey) headers.set("Idempotency-Key", `"${context.idempotencyKey}"`);
    return baseFetch(input, { ...init, headers, signal: context.signal });
  };
}

function translate(sdk: PortOneClients, operation: string, error: unknown): never {
  if (isRestError(sdk, error)) {
    const data = (error.data ?? {}) as { type?: unknown };
    if (typeof data.type === "string" && documentedRefusals.has(data.type)) {
      if (data.type === "UNAUTHORIZED" || data.type === "FORBIDDEN") {
        log("error", "portone_credentials_refused", { operation, type: data.type });
      }
      throw new PortOneRefusal(operation, data);
    }
    log("warn", "portone_unavailable", { operation, reason: "undocumented_error", type: String(data.type) });
    throw new AppError("portone_unavailable", "PortOne is unavailable; retry later", { cause: error });
  }
  const reason = error instanceof SyntaxError
    ? "non_json_response"
    : error instanceof DOMException && error.name === "TimeoutError"
    ? "timeout"
    : error instanceof TypeError || error instanceof DOMException
    ? "network"
    : null;
  if (reason) {
    log("warn", "portone_unavailable", { operation, reason });
    throw new AppError("portone_unavailable", "PortOne is unavailable; retry later", { cause: error });
  }
  throw error;
}

export interface PortOneGatewayOptions {
  readonly apiSecret: string;
  readonly storeId: string;
  readonly apiBase: string;
  readonly timeoutMs: number;
}

export interface CancelPaymentInput {
  readonly paymentId: string;
  readonly amount?: number;
  readonly taxFreeAmount?: number;
  readonly reason: string;
  readonly requester: "CUSTOMER" | "ADMIN";
  readonly currentCancellableAmount: number;
  readonly refundAccount?: { bank: Bank; number: string; holderName: string; holderPhoneNumber?: string };
  readonly idempotencyKey: string;
}

export interface PayWithBillingKeyInput {
  readonly paymentId: string;
  readonly billingKey: string;
  readonly channelKey?: string;
  readonly orderName: string;
  readonly amount: { total: number; taxFree: number };
  readonly currency: Currency;
  readonly customerId: string;
  readonly idempotencyKey: string;
}

interface BoundClients {
  readonly sdk: PortOneClients;
  readonly payments: ReturnType<PortOneClients["PaymentClient"]>;
  readonly identity: ReturnType<PortOneClients["IdentityVerificationClient"]>;
}

/** Every PortOne call our functions make, bound to one store, with timeouts and error translation. */
export function createPortOneGateway(options: PortOneGatewayOptions) {
  installFetchHook();
  const origin = new URL(options.apiBase).origin;
  const init = { secret: options.apiSecret, baseUrl: origin, storeId: options.storeId };
  const storeId = options.storeId;
  let clients: Promise<BoundClients> | undefined;

  async function call<T>(
    operation: string,
    idempotencyKey: string | undefined,
    run: (api: BoundClients) => Promise<T>,
  ): Promise<T> {
    // loaded by the first call (the module loader keeps them for the isolate); a failed load is retried
    clients ??= loadPortOneClients().then((sdk) => ({
      sdk,
      payments: sdk.PaymentClient(init),
      identity: sdk.IdentityVerificationClient(init),
    })).catch((error) => {
      clients = undefined;
      throw error;
    });
    const api = await clients;
    // the timeout starts once the clients are loaded: it bounds PortOne's answer, not our boot
    const signal = AbortSignal.timeout(options.timeoutMs);
    try {
      return await callContext.run({ origin, signal, idempotencyKey }, () => run(api));
    } catch (error) {
      translate(api.sdk, operation, error);
    }
  }

  return {
    storeId,
    getPayment: (paymentId: string): Promise<Payment> =>
      call("getPayment", undefined, ({ payments }) => payments.getPayment({ paymentId, storeId })),
    preRegisterPayment: (
      input: { paymentId: string; totalAmount: number; taxFreeAmount: number; currency: Currency },
    ) =>
      call(
        "preRegisterPayment",
        undefined,
        ({ payments }) => payments.preRegisterPayment({ ...input, storeId }),
      ),
    cancelPayment: ({ idempotencyKey, ...input }: CancelPaymentInput): Promise<PaymentCancellation> =>
      call(
        "cancelPayment",
        idempotencyKey,
        async ({ payments }) => (await payments.cancelPayment({ ...input, storeId })).cancellation,
      ),
    payWithBillingKey: ({ idempotencyKey, customerId, ...input }: PayWithBillingKeyInput) =>
      call(
        "payWithBillingKey",
        idempotencyKey,
        ({ payments }) => payments.payWithBillingKey({ ...input, storeId, customer: { id: customerId } }),
      ),
    getBillingKeyInfo: (billingKey: string): Promise<BillingKeyInfo> =>
      call(
        "getBillingKeyInfo",
        undefined,
        ({ payments }) => payments.billingKey.getBillingKeyInfo({ billingKey, storeId }),
      ),
    deleteBillingKey: (billingKey: string, reason: string, requester: "CUSTOMER" | "ADMIN") =>
      call(
        "deleteBillingKey",
        undefined,
        ({ payments }) => payments.billingKey.deleteBillingKey({ billingKey, storeId, reason, requester }),
      ),
    getIdentityVerification: (identityVerificationId: string): Promise<IdentityVerification> =>
      call(
        "getIdentityVerification",
        undefined,
        ({ identity }) => identity.getIdentityVerification({ identityVerificationId, storeId }),
      ),
    getPaymentsByCursor: (input: { from?: string; until?: string; cursor?: string; size?: number }) =>
      call(
        "getAllPaymentsByCursor",
        undefined,
        ({ payments }) => payments.getAllPaymentsByCursor({ ...input, storeId }),
      ),
    /** PortOne's log of money events (paid, cancelled), oldest first; our store only. */
    getPaymentEventsByCursor: (input: { from?: string; until?: string; cursor?: string; size?: number }) =>
      call(
        "getAllPaymentEventsByCursor",
        undefined,
        ({ payments }) => payments.getAllPaymentEventsByCursor({ ...input, storeId }),
      ),
    resendWebhook: (paymentId: string, webhookId?: string) =>
      call(
        "resendWebhook",
        undefined,
        ({ payments }) =>
          payments.resendWebhook(
            webhookId === undefined ? { paymentId, storeId } : { paymentId, storeId, webhookId },
          ),
      ),
  };
}

export type PortOneGateway = ReturnType<typeof createPortOneGateway>;
