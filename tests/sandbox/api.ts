/**
 * The PortOne V2 REST routes, served at the root of the API origin (the SDK drops any path in
 * `baseUrl`). Bodies are parsed as JSON whatever the Content-Type, because the SDK sends
 * `text/plain;charset=UTF-8`; list endpoints read URL-encoded JSON from the `requestBody` query.
 *
 * Idempotency-Key: the spec defines no error type for a key reused with a different request, so
 * that answers 400 INVALID_REQUEST; a key still in flight answers 409 IDEMPOTENCY_OUTSTANDING_REQUEST
 * (developers.portone.io REST overview). Completed non-5xx answers are replayed for 3 sandbox hours.
 */
import type { PortOneBillingKey, PortOneCommon, PortOnePayment } from "../../shared/infra/deps.ts";
import type { Operation, PickedFault, RestFaults } from "./faults.ts";
import {
  cancellableAmounts,
  emitBillingKeyWebhook,
  emitPaymentWebhook,
  now,
  paymentView,
  recordPaymentEvent,
  type SandboxContext,
  setStatus,
  settleCancellation,
} from "./payment-events.ts";
import {
  ApiError,
  BANKS,
  type CancellationRecord,
  type PaymentRecord,
  type PaymentStatus,
  type RefundAccount,
  SandboxState,
  toBillingKeyInfo,
  toCancellation,
  toIdentityVerification,
  vatOf,
} from "./state.ts";

export interface ApiContext extends SandboxContext {
  apiSecret: string;
  faults: RestFaults;
  /** Aborted when the sandbox closes, so latency and hangs never outlive it. */
  closing: AbortSignal;
}

export interface ApiRequest {
  method: string;
  url: URL;
  headers: Headers;
  body: string;
  /** Aborted when the client disconnects. */
  clientGone: AbortSignal;
}

/** What the transport should do: write a response, drop the TCP connection, or never answer. */
export type Outcome =
  | { kind: "response"; status: number; body: string; contentType: string }
  | { kind: "reset" }
  | { kind: "hang" };

const IDEMPOTENCY_WINDOW_MS = 3 * 3600_000;

type Handler = (ctx: ApiContext, params: string[], req: ApiRequest) => unknown;

interface Route {
  method: string;
  pattern: RegExp;
  operation: Operation;
  handler: Handler;
}

const routes: Route[] = [
  { method: "GET", pattern: /^\/payments$/, operation: "getPayments", handler: getPayments },
  {
    method: "GET",
    pattern: /^\/payments-by-cursor$/,
    operation: "getAllPaymentsByCursor",
    handler: getAllByCursor,
  },
  {
    method: "GET",
    pattern: /^\/payment-events-by-cursor$/,
    operation: "getAllPaymentEventsByCursor",
    handler: getAllEventsByCursor,
  },
  { method: "GET", pattern: /^\/payments\/([^/]+)$/, operation: "getPayment", handler: getPayment },
  {
    method: "POST",
    pattern: /^\/payments\/([^/]+)\/pre-register$/,
    operation: "preRegisterPayment",
    handler: preRegister,
  },
  {
    method: "POST",
    pattern: /^\/payments\/([^/]+)\/cancel$/,
    operation: "cancelPayment",
    handler: cancelPayment,
  },
  {
    method: "POST",
    pattern: /^\/payments\/([^/]+)\/billing-key$/,
    operation: "payWithBillingKey",
    handler: payWithBillingKey,
  },
  {
    method: "POST",
    pattern: /^\/payments\/([^/]+)\/resend-webhook$/,
    operation: "resendWebhook",
    handler: resendWebhook,
  },
  {
    method: "POST",
    pattern: /^\/payments\/([^/]+)\/virtual-account\/close$/,
    operation: "closeVirtualAccount",
    handler: closeVirtualAccount,
  },
  {
    method: "GET",
    pattern: /^\/billing-keys\/([^/]+)$/,
    operation: "getBillingKeyInfo",
    handler: getBillingKey,
  },
  {
    method: "DELETE",
    pattern: /^\/billing-keys\/([^/]+)$/,
    operation: "deleteBillingKey",
    handler: deleteBillingKey,
  },
  {
    method: "GET",
    pattern: /^\/identity-verifications\/([^/]+)$/,
    operation: "getIdentityVerification",
    handler: getIdentityVerification,
  },
];

export async function handleApi(ctx: ApiContext, req: ApiRequest): Promise<Outcome> {
  const path = req.url.pathname;
  let operation: Operation | undefined;
  let params: string[] = [];
  let handler: Handler | undefined;
  for (const route of routes) {
    const match = route.method === req.method ? route.pattern.exec(path) : null;
    if (match) {
      operation = route.operation;
      params = match.slice(1).map((param) => decodeURIComponent(param));
      handler = route.handler;
      break;
    }
  }
  const log = {
    at: now(ctx),
    method: req.method,
    path,
    query: req.url.search,
    operation,
    status: 0 as number | "reset" | "hang",
    replayed: false,
  } as SandboxState["requests"][number];
  ctx.state.requests.push(log);
  const finish = (outcome: Outcome): Outcome => {
    log.status = outcome.kind === "response" ? outcome.status : outcome.kind;
    return outcome;
  };

  if (!handler || !operation) {
    return finish(json(404, { type: "NOT_FOUND", message: `no PortOne route for ${req.method} ${path}` }));
  }
  if (req.headers.get("authorization") !== `PortOne ${ctx.apiSecret}`) {
    return finish(json(401, { type: "UNAUTHORIZED", message: "인증 정보가 올바르지 않습니다." }));
  }

  let idempotencyKey: string | undefined;
  const rawKey = req.headers.get("idempotency-key");
  if (rawKey !== null && ["POST", "PUT", "PATCH", "DELETE"].includes(req.method)) {
    idempotencyKey = parseIdempotencyKey(rawKey);
    log.idempotencyKey = idempotencyKey;
    if (idempotencyKey === undefined || idempotencyKey.length < 16 || idempotencyKey.length > 256) {
      return finish(json(400, {
        type: "INVALID_REQUEST",
        message: "Idempotency-Key must be a string of 16 to 256 ASCII characters",
      }));
    }
    const fingerprint = `${req.method} ${path}?${sortedQuery(req.url)}\n${canonicalBody(req.body)}`;
    const nowMs = ctx.clock().getTime();
    const existing = ctx.state.idempotency.get(idempotencyKey);
    if (existing && existing.createdAtMs + IDEMPOTENCY_WINDOW_MS > nowMs) {
      if (existing.fingerprint !== fingerprint) {
        return finish(json(400, {
          type: "INVALID_REQUEST",
          message: "Idempotency-Key was already used with a different method, path or body",
        }));
      }
      if (existing.state === "in-flight") {
        return finish(json(409, {
          type: "IDEMPOTENCY_OUTSTANDING_REQUEST",
          message: "a request with this Idempotency-Key is still being processed",
        }));
      }
      log.replayed = true;
      return finish({
        kind: "response",
        status: existing.status ?? 200,
        body: existing.body ?? "{}",
        contentType: "application/json",
      });
    }
    ctx.state.idempotency.set(idempotencyKey, { fingerprint, createdAtMs: nowMs, state: "in-flight" });
  }
  const release = () => {
    if (idempotencyKey !== undefined) ctx.state.idempotency.delete(idempotencyKey);
  };

  const fault = ctx.faults.pick(operation, req.method, path);
  if (fault) log.fault = fault.mode;
  if (fault?.mode === "latency") {
    await sleep(fault.latencyMs, ctx.closing);
  } else if (fault && !fault.applyBeforeFailure) {
    // The request never reached PortOne's business logic, so the key is free again.
    const outcome = await failWith(fault, req, ctx);
    release();
    return finish(outcome);
  }

  const result = await run(ctx, handler, params, req);
  if (idempotencyKey !== undefined) {
    if (result.status >= 500 && !(fault && fault.mode !== "latency")) {
      release();
    } else {
      ctx.state.idempotency.set(idempotencyKey, {
        fingerprint: ctx.state.idempotency.get(idempotencyKey)?.fingerprint ?? "",
        createdAtMs: ctx.clock().getTime(),
        state: "done",
        status: result.status,
        body: result.body,
      });
    }
  }
  if (fault && fault.mode !== "latency") return finish(await failWith(fault, req, ctx));
  return finish(result);
}

async function run(
  ctx: ApiContext,
  handler: Handler,
  params: string[],
  req: ApiRequest,
): Promise<Extract<Outcome, { kind: "response" }>> {
  try {
    return json(200, await handler(ctx, params, req));
  } catch (error) {
    if (error instanceof ApiError) return json(error.status, error.toBody());
    return json(500, {
      type: "INTERNAL_SERVER_ERROR",
      message: error instanceof Error ? error.message : String(error),
    });
  }
}

async function failWith(fault: PickedFault, req: ApiRequest, ctx: ApiContext): Promise<Outcome> {
  switch (fault.mode) {
    case "status5xx":
      return json(fault.status, { type: "INTERNAL_SERVER_ERROR", message: "sandbox: injected server error" });
    case "refusal":
      return json(fault.status, {
        type: fault.type,
        message: "sandbox: injected refusal",
        ...(fault.type === "PG_PROVIDER" ? { pgCode: "SANDBOX_REFUSED", pgMessage: "거절되었습니다" } : {}),
      });
    case "html502":
      return {
        kind: "response",
        status: 502,
        contentType: "text/html",
        body: "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
      };
    case "reset":
      return { kind: "reset" };
    case "hang":
      await waitForAbort(AbortSignal.any([req.clientGone, ctx.closing]));
      return { kind: "hang" };
    case "latency":
      throw new Error("latency is not a failure");
  }
}

function json(status: number, value: unknown): Extract<Outcome, { kind: "response" }> {
  return { kind: "response", status, body: JSON.stringify(value), contentType: "application/json" };
}

/** RFC 8941 sf-string (`"..."` with `\"` and `\\` escapes) or a bare token. */
export function parseIdempotencyKey(raw: string): string | undefined {
  const value = raw.trim();
  if (!value.startsWith('"')) return /^[\x21-\x7e]+$/.test(value) ? value : undefined;
  const match = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/.exec(value);
  return match?.[1]?.replace(/\\(["\\])/g, "$1");
}

function sortedQuery(url: URL): string {
  return [...url.searchParams.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`)
    .join(
      "&",
    );
}

function canonicalBody(body: string): string {
  if (body.trim() === "") return "";
  try {
    return stableStringify(JSON.parse(body));
  } catch {
    return body;
  }
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

// ---------------------------------------------------------------------------------------------
// Input helpers

function invalid(message: string): ApiError {
  return new ApiError(400, "INVALID_REQUEST", message);
}

function jsonBody(req: ApiRequest): Record<string, unknown> {
  return parseObject(req.body, "request body");
}

function queryBody(req: ApiRequest): Record<string, unknown> {
  return parseObject(req.url.searchParams.get("requestBody") ?? "", "requestBody");
}

function parseObject(text: string, what: string): Record<string, unknown> {
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(`${what} is not valid JSON`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(`${what} must be an object`);
  }
  return value as Record<string, unknown>;
}

function optionalString(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalid(`${name} must be a string`);
  return value;
}

function requiredString(body: Record<string, unknown>, name: string): string {
  const value = optionalString(body, name);
  if (value === undefined || value === "") throw invalid(`${name} is required`);
  return value;
}

function optionalInt(body: Record<string, unknown>, name: string, min = 0): number | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw invalid(`${name} must be an integer ≥ ${min}`);
  }
  return value;
}

function optionalTime(body: Record<string, unknown>, name: string): number | undefined {
  const value = optionalString(body, name);
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalid(`${name} must be an RFC 3339 date-time`);
  return ms;
}

/** Absent → the secret's own store; a store of another merchant → 403, as PortOne scopes access. */
function resolveStore(ctx: ApiContext, storeId: string | null | undefined): string {
  if (storeId === undefined || storeId === null || storeId === "") return ctx.state.mainStoreId;
  if (!ctx.state.stores.has(storeId)) {
    throw new ApiError(403, "FORBIDDEN", `store ${storeId}에 접근할 권한이 없습니다.`);
  }
  return storeId;
}

function findPayment(ctx: ApiContext, storeId: string, paymentId: string): PaymentRecord {
  const record = ctx.state.payment(storeId, paymentId);
  if (!record) throw new ApiError(404, "PAYMENT_NOT_FOUND", "결제 건이 존재하지 않습니다.");
  return record;
}

// ---------------------------------------------------------------------------------------------
// Payments

function getPayment(ctx: ApiContext, [paymentId]: string[], req: ApiRequest): PortOnePayment.Payment {
  const storeId = resolveStore(ctx, req.url.searchParams.get("storeId"));
  return paymentView(ctx, findPayment(ctx, storeId, paymentId ?? ""));
}

function preRegister(
  ctx: ApiContext,
  [paymentId = ""]: string[],
  req: ApiRequest,
): PortOnePayment.PreRegisterPaymentResponse {
  const body = jsonBody(req);
  const storeId = resolveStore(ctx, optionalString(body, "storeId"));
  const totalAmount = optionalInt(body, "totalAmount");
  const taxFreeAmount = optionalInt(body, "taxFreeAmount");
  const currency = optionalString(body, "currency");
  if (totalAmount !== undefined && taxFreeAmount !== undefined && taxFreeAmount > totalAmount) {
    throw invalid("taxFreeAmount exceeds totalAmount");
  }
  const record = ctx.state.payment(storeId, paymentId);
  if (
    record && ["PAID", "PARTIAL_CANCELLED", "CANCELLED", "VIRTUAL_ACCOUNT_ISSUED"].includes(record.status)
  ) {
    throw new ApiError(409, "ALREADY_PAID", "이미 결제가 완료된 결제 건입니다.");
  }
  ctx.state.preRegistrations.set(SandboxState.key(storeId, paymentId), {
    totalAmount,
    taxFreeAmount,
    currency,
  });
  return {};
}

function cancelPayment(
  ctx: ApiContext,
  [paymentId = ""]: string[],
  req: ApiRequest,
): PortOnePayment.CancelPaymentResponse {
  const body = jsonBody(req);
  const storeId = resolveStore(ctx, optionalString(body, "storeId"));
  const reason = requiredString(body, "reason");
  const amount = optionalInt(body, "amount", 1);
  const taxFreeInput = optionalInt(body, "taxFreeAmount");
  const vatInput = optionalInt(body, "vatAmount");
  const current = optionalInt(body, "currentCancellableAmount");
  const requester = optionalString(body, "requester");
  if (requester !== undefined && requester !== "CUSTOMER" && requester !== "ADMIN") {
    throw invalid("requester must be CUSTOMER or ADMIN");
  }
  const skipWebhook = body.skipWebhook === true;
  const record = findPayment(ctx, storeId, paymentId);
  if (record.status === "CANCELLED") {
    throw new ApiError(409, "PAYMENT_ALREADY_CANCELLED", "이미 취소된 결제 건입니다.");
  }
  if (record.status !== "PAID" && record.status !== "PARTIAL_CANCELLED") {
    throw new ApiError(409, "PAYMENT_NOT_PAID", "결제가 완료되지 않은 결제 건입니다.");
  }
  const cancellable = cancellableAmounts(record);
  if (current !== undefined && current !== cancellable.amount) {
    throw new ApiError(
      409,
      "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN",
      `취소 가능 잔액 검증에 실패했습니다 (요청 ${current}, 실제 ${cancellable.amount}).`,
    );
  }
  const cancelAmount = amount ?? cancellable.amount;
  if (cancelAmount > cancellable.amount || cancellable.amount <= 0) {
    throw new ApiError(
      409,
      "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
      "취소 금액이 취소 가능 금액을 초과합니다.",
    );
  }
  const taxableLeft = cancellable.amount - cancellable.taxFree;
  // Without taxFreeAmount the cancel is taxable, except what the taxable balance cannot cover.
  const taxFree = taxFreeInput ??
    (amount === undefined ? cancellable.taxFree : Math.max(0, cancelAmount - taxableLeft));
  if (taxFree > cancelAmount) throw invalid("taxFreeAmount exceeds the cancel amount");
  if (taxFree > cancellable.taxFree) {
    throw new ApiError(
      409,
      "CANCEL_TAX_FREE_AMOUNT_EXCEEDS_CANCELLABLE_TAX_FREE_AMOUNT",
      "취소 면세 금액이 취소 가능한 면세 금액을 초과합니다.",
    );
  }
  if (cancelAmount - taxFree > taxableLeft) {
    throw new ApiError(
      409,
      "CANCEL_TAX_AMOUNT_EXCEEDS_CANCELLABLE_TAX_AMOUNT",
      "취소 과세 금액이 취소 가능한 과세 금액을 초과합니다.",
    );
  }
  let refundAccount: RefundAccount | undefined;
  if (record.method?.type === "PaymentMethodVirtualAccount") {
    refundAccount = parseRefundAccount(body.refundAccount);
  }
  const at = now(ctx);
  const cancellation: CancellationRecord = {
    status: "REQUESTED",
    id: `cancellation-${crypto.randomUUID()}`,
    pgCancellationId: `pg-cancel-${crypto.randomUUID()}`,
    totalAmount: cancelAmount,
    taxFreeAmount: taxFree,
    vatAmount: vatInput ?? vatOf(cancelAmount, taxFree),
    reason,
    requestedAt: at,
    skipWebhook,
    ...(refundAccount ? { refundAccount } : {}),
  };
  record.cancellations.push(cancellation);
  record.updatedAt = at;
  if (record.asyncCancel) {
    if (!skipWebhook) {
      emitPaymentWebhook(ctx, record, "Transaction.CancelPending", { cancellationId: cancellation.id });
    }
  } else {
    settleCancellation(ctx, record, cancellation);
  }
  return { cancellation: toCancellation(cancellation) };
}

function parseRefundAccount(value: unknown): RefundAccount {
  if (value === undefined || value === null) {
    throw invalid("가상계좌 결제 취소에는 refundAccount(환불 계좌)가 필요합니다.");
  }
  if (typeof value !== "object" || Array.isArray(value)) throw invalid("refundAccount must be an object");
  const account = value as Record<string, unknown>;
  const bank = requiredString(account, "bank");
  if (!BANKS.includes(bank)) throw invalid(`refundAccount.bank ${bank} is not a Bank code`);
  const number = requiredString(account, "number");
  if (!/^\d{6,20}$/.test(number)) {
    throw invalid("refundAccount.number must be 6 to 20 digits without separators");
  }
  const holderName = requiredString(account, "holderName");
  const holderPhoneNumber = optionalString(account, "holderPhoneNumber");
  if (holderPhoneNumber !== undefined && !/^\d{9,11}$/.test(holderPhoneNumber)) {
    throw invalid("refundAccount.holderPhoneNumber must be digits");
  }
  return {
    bank: bank as PortOneCommon.Bank,
    number,
    holderName,
    ...(holderPhoneNumber !== undefined ? { holderPhoneNumber } : {}),
  };
}

function payWithBillingKey(
  ctx: ApiContext,
  [paymentId = ""]: string[],
  req: ApiRequest,
): PortOnePayment.PayWithBillingKeyResponse {
  const body = jsonBody(req);
  const storeId = resolveStore(ctx, optionalString(body, "storeId"));
  const billingKey = requiredString(body, "billingKey");
  const orderName = requiredString(body, "orderName");
  const currency = requiredString(body, "currency");
  const amountInput = body.amount;
  if (amountInput === null || typeof amountInput !== "object" || Array.isArray(amountInput)) {
    throw invalid("amount is required");
  }
  const amountBody = amountInput as Record<string, unknown>;
  const total = optionalInt(amountBody, "total", 1);
  if (total === undefined) throw invalid("amount.total is required");
  const taxFree = optionalInt(amountBody, "taxFree") ?? 0;
  if (taxFree > total) throw invalid("amount.taxFree exceeds amount.total");
  const channelKey = optionalString(body, "channelKey");
  const customerBody = body.customer;
  const customerId = customerBody !== null && typeof customerBody === "object" && !Array.isArray(customerBody)
    ? optionalString(customerBody as Record<string, unknown>, "id")
    : undefined;

  const key = ctx.state.billingKeys.get(SandboxState.key(storeId, billingKey));
  if (!key) throw new ApiError(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.");
  if (key.deletedAt !== undefined) {
    throw new ApiError(409, "BILLING_KEY_ALREADY_DELETED", "이미 삭제된 빌링키입니다.");
  }
  const channel = channelKey === undefined ? key.channel : ctx.state.findChannel(storeId, channelKey);
  if (!channel) throw new ApiError(404, "CHANNEL_NOT_FOUND", "채널이 존재하지 않습니다.");
  const previous = ctx.state.payment(storeId, paymentId);
  if (previous && previous.status !== "FAILED" && previous.status !== "READY") {
    throw new ApiError(409, "ALREADY_PAID", "이미 결제가 완료된 결제 건입니다.");
  }
  const at = now(ctx);
  const record: PaymentRecord = {
    seq: previous?.seq ?? ctx.state.nextSeq(),
    id: paymentId,
    storeId,
    transactionId: crypto.randomUUID(),
    status: "READY",
    channel,
    methodType: "CARD",
    method: { type: "PaymentMethodCard", card: { ...key.card }, approvalNumber: "00000000" },
    orderName,
    currency: currency as PortOneCommon.Currency,
    total,
    taxFree,
    cancelled: 0,
    cancelledTaxFree: 0,
    customer: customerId !== undefined ? { id: customerId } : { ...key.customer },
    requestedAt: at,
    updatedAt: at,
    statusChangedAt: at,
    pgTxId: `pg-tx-${crypto.randomUUID()}`,
    billingKey,
    cancellations: [],
    asyncCancel: false,
    webhookIds: previous?.webhookIds ?? [],
  };
  ctx.state.payments.set(SandboxState.key(storeId, paymentId), record);
  if (key.declinePayments) {
    record.failedAt = setStatus(ctx, record, "FAILED");
    record.failure = {
      reason: "카드사 승인 거절 (sandbox)",
      pgCode: "REJECT_CARD_COMPANY",
      pgMessage: "한도초과",
    };
    emitPaymentWebhook(ctx, record, "Transaction.Failed");
    throw new ApiError(502, "PG_PROVIDER", "PG사에서 오류가 발생했습니다.", {
      pgCode: "REJECT_CARD_COMPANY",
      pgMessage: "한도초과",
    });
  }
  record.paidAt = setStatus(ctx, record, "PAID");
  recordPaymentEvent(ctx, record);
  emitPaymentWebhook(ctx, record, "Transaction.Paid");
  return { payment: { pgTxId: record.pgTxId ?? "", paidAt: record.paidAt } };
}

function resendWebhook(
  ctx: ApiContext,
  [paymentId = ""]: string[],
  req: ApiRequest,
): PortOnePayment.ResendWebhookResponse {
  const body = jsonBody(req);
  const storeId = resolveStore(ctx, optionalString(body, "storeId"));
  const webhookId = optionalString(body, "webhookId");
  const record = findPayment(ctx, storeId, paymentId);
  const id = webhookId ?? record.webhookIds.at(-1);
  if (id === undefined || !record.webhookIds.includes(id)) {
    throw new ApiError(404, "WEBHOOK_NOT_FOUND", "웹훅 내역이 존재하지 않습니다.");
  }
  const message = ctx.webhooks.resend(id);
  return { webhook: { ...ctx.webhooks.toPaymentWebhook(message), trigger: "MANUAL" } };
}

function closeVirtualAccount(
  ctx: ApiContext,
  [paymentId = ""]: string[],
  req: ApiRequest,
): PortOnePayment.CloseVirtualAccountResponse {
  const storeId = resolveStore(ctx, req.url.searchParams.get("storeId"));
  const record = findPayment(ctx, storeId, paymentId);
  if (record.status !== "VIRTUAL_ACCOUNT_ISSUED") {
    throw new ApiError(409, "PAYMENT_NOT_WAITING_FOR_DEPOSIT", "입금 대기 중인 가상계좌 결제 건이 아닙니다.");
  }
  // Undocumented outcome: the sandbox books a closed account as CANCELLED with no cancellations
  // and sends no webhook (Transaction.Cancelled would need a cancellationId that does not exist).
  const closedAt = setStatus(ctx, record, "CANCELLED");
  record.cancelledAt = closedAt;
  return { closedAt };
}

const FILTER_STATUS: Record<string, PaymentStatus> = {
  READY: "READY",
  PENDING: "PAY_PENDING",
  VIRTUAL_ACCOUNT_ISSUED: "VIRTUAL_ACCOUNT_ISSUED",
  PAID: "PAID",
  FAILED: "FAILED",
  PARTIAL_CANCELLED: "PARTIAL_CANCELLED",
  CANCELLED: "CANCELLED",
};

function getPayments(
  ctx: ApiContext,
  _params: string[],
  req: ApiRequest,
): PortOnePayment.GetPaymentsResponse {
  const body = queryBody(req);
  const page = objectOrEmpty(body.page, "page");
  const filter = objectOrEmpty(body.filter, "filter");
  const number = optionalInt(page, "number") ?? 0;
  const size = optionalInt(page, "size", 1) ?? 10;
  const storeIdInput = optionalString(filter, "storeId");
  // Without a storeId the filter covers every store of the merchant (spec: 고객사 전체 결제 건).
  const storeId = storeIdInput === undefined ? undefined : resolveStore(ctx, storeIdInput);
  const until = optionalTime(filter, "until") ?? ctx.clock().getTime();
  const from = optionalTime(filter, "from") ?? until - 90 * 24 * 3600_000;
  const timestampType = optionalString(filter, "timestampType") ?? "CREATED_AT";
  if (timestampType !== "CREATED_AT" && timestampType !== "STATUS_CHANGED_AT") {
    throw invalid("timestampType must be CREATED_AT or STATUS_CHANGED_AT");
  }
  const statuses = stringArray(filter, "status").map((status) => {
    const mapped = FILTER_STATUS[status];
    if (!mapped) throw invalid(`unknown status filter ${status} (the filter says PENDING, not PAY_PENDING)`);
    return mapped;
  });
  const methods = stringArray(filter, "methods");
  const isTest = filter.isTest;
  const currency = optionalString(filter, "currency");
  const textSearch = Array.isArray(filter.textSearch)
    ? filter.textSearch as { field?: unknown; value?: unknown }[]
    : [];
  const sortBy = optionalString(filter, "sortBy") ?? "REQUESTED_AT";
  const sortOrder = optionalString(filter, "sortOrder") ?? "DESC";

  const stamp = (record: PaymentRecord) =>
    Date.parse(timestampType === "CREATED_AT" ? record.requestedAt : record.statusChangedAt);
  const matches = [...ctx.state.payments.values()].filter((record) =>
    (storeId === undefined || record.storeId === storeId) &&
    stamp(record) >= from && stamp(record) <= until &&
    (statuses.length === 0 || statuses.includes(record.status)) &&
    (methods.length === 0 || methods.includes(record.methodType)) &&
    (typeof isTest !== "boolean" || (record.channel.type === "TEST") === isTest) &&
    (currency === undefined || record.currency === currency) &&
    textSearch.every(({ field, value }) => {
      if (typeof value !== "string") return true;
      const haystack = field === "PAYMENT_ID"
        ? [record.id]
        : field === "ORDER_NAME"
        ? [record.orderName]
        : field === "TX_ID"
        ? [record.transactionId]
        : field === "BILLING_KEY"
        ? [record.billingKey ?? ""]
        : [record.id, record.orderName, record.transactionId];
      return haystack.some((text) => text.includes(value));
    })
  );
  const sortKey = (record: PaymentRecord) =>
    Date.parse(sortBy === "STATUS_CHANGED_AT" ? record.statusChangedAt : record.requestedAt);
  matches.sort((a, b) => (sortKey(a) - sortKey(b)) || (a.seq - b.seq));
  if (sortOrder !== "ASC") matches.reverse();
  return {
    items: matches.slice(number * size, number * size + size).map((record) => paymentView(ctx, record)),
    page: { number, size, totalCount: matches.length },
  };
}

function getAllByCursor(
  ctx: ApiContext,
  _params: string[],
  req: ApiRequest,
): PortOnePayment.GetAllPaymentsByCursorResponse {
  const body = queryBody(req);
  const storeId = resolveStore(ctx, optionalString(body, "storeId"));
  const { size, from, until, after } = cursorPage(ctx, body, "seq");
  const items = [...ctx.state.payments.values()]
    .filter((record) =>
      record.storeId === storeId && record.seq > after &&
      Date.parse(record.requestedAt) >= from && Date.parse(record.requestedAt) <= until
    )
    .sort((a, b) => a.seq - b.seq)
    .slice(0, size);
  return {
    items: items.map((record) => ({ payment: paymentView(ctx, record), cursor: btoa(`seq:${record.seq}`) })),
  };
}

/**
 * Every payment event created in [from, until] (default: the 90 days before now), oldest first, after
 * `cursor`. Without a storeId the merchant's every store is read (spec: 고객사 전체 결제 이벤트).
 */
function getAllEventsByCursor(
  ctx: ApiContext,
  _params: string[],
  req: ApiRequest,
): PortOnePayment.GetAllPaymentEventsByCursorResponse {
  const body = queryBody(req);
  const storeIdInput = optionalString(body, "storeId");
  const storeId = storeIdInput === undefined ? undefined : resolveStore(ctx, storeIdInput);
  const { size, from, until, after } = cursorPage(ctx, body, "event");
  const items = ctx.state.paymentEvents
    .filter((record) =>
      record.seq > after && (storeId === undefined || record.storeId === storeId) &&
      record.createdAtMs >= from && record.createdAtMs <= until
    )
    .slice(0, size);
  return {
    items: items.map(({ seq, event }) => ({
      paymentEvent: structuredClone(event),
      cursor: btoa(`event:${seq}`),
    })),
  };
}

/**
 * The paging fields both cursor APIs share: `size` (default 10, at most 1000), the [from, until] window
 * (default: the 90 days before now) and `cursor`, an opaque token this API returned (`<kind>:<seq>`).
 */
function cursorPage(ctx: ApiContext, body: Record<string, unknown>, kind: "seq" | "event") {
  const size = optionalInt(body, "size", 1) ?? 10;
  if (size > 1000) throw invalid("size must be at most 1000");
  const until = optionalTime(body, "until") ?? ctx.clock().getTime();
  const from = optionalTime(body, "from") ?? until - 90 * 24 * 3600_000;
  const cursor = optionalString(body, "cursor");
  let after = 0;
  if (cursor !== undefined) {
    const match = new RegExp(`^${kind}:(\\d+)$`).exec(safeAtob(cursor));
    if (!match) throw invalid("cursor is not one this API returned");
    after = Number(match[1]);
  }
  return { size, from, until, after };
}

function safeAtob(value: string): string {
  try {
    return atob(value);
  } catch {
    return "";
  }
}

function objectOrEmpty(value: unknown, name: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw invalid(`${name} must be an object`);
  return value as Record<string, unknown>;
}

function stringArray(body: Record<string, unknown>, name: string): string[] {
  const value = body[name];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
    throw invalid(`${name} must be an array of strings`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Billing keys and identity verification

function getBillingKey(
  ctx: ApiContext,
  [billingKey = ""]: string[],
  req: ApiRequest,
): PortOneBillingKey.BillingKeyInfo {
  const storeId = resolveStore(ctx, req.url.searchParams.get("storeId"));
  const record = ctx.state.billingKeys.get(SandboxState.key(storeId, billingKey));
  if (!record) throw new ApiError(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.");
  return toBillingKeyInfo(record, ctx.state.merchantId);
}

function deleteBillingKey(
  ctx: ApiContext,
  [billingKey = ""]: string[],
  req: ApiRequest,
): PortOneBillingKey.DeleteBillingKeyResponse {
  const query = req.url.searchParams;
  const storeId = resolveStore(ctx, query.get("storeId"));
  const requester = query.get("requester");
  if (requester !== null && requester !== "CUSTOMER" && requester !== "ADMIN") {
    throw invalid("requester must be CUSTOMER or ADMIN");
  }
  const record = ctx.state.billingKeys.get(SandboxState.key(storeId, billingKey));
  if (!record) throw new ApiError(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.");
  if (record.deletedAt !== undefined) {
    throw new ApiError(409, "BILLING_KEY_ALREADY_DELETED", "이미 삭제된 빌링키입니다.");
  }
  record.deletedAt = now(ctx);
  emitBillingKeyWebhook(ctx, "BillingKey.Deleted", record.billingKey, record.storeId);
  return { deletedAt: record.deletedAt };
}

function getIdentityVerification(ctx: ApiContext, [id = ""]: string[], req: ApiRequest) {
  const storeId = resolveStore(ctx, req.url.searchParams.get("storeId"));
  const record = ctx.state.identityVerifications.get(SandboxState.key(storeId, id));
  if (!record) {
    throw new ApiError(404, "IDENTITY_VERIFICATION_NOT_FOUND", "요청된 본인인증 건이 존재하지 않습니다.");
  }
  return toIdentityVerification(record);
}
