/**
 * `startSandbox()` — an in-process emulator of the PortOne V2 REST API and its webhooks.
 *
 * The PortOne listener uses `node:http` rather than `Deno.serve` because only a raw socket lets the
 * `reset` fault drop a connection without any response. The control API (customer simulation and
 * truth, see control.ts) listens on a second port so nothing of it is reachable through `baseUrl`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { PortOnePayment } from "../../shared/infra/deps.ts";
import { type ApiContext, handleApi } from "./api.ts";
import { startControlServer } from "./control.ts";
import {
  completeCancellation,
  type CompleteCancellationInput,
  completeIdentityVerification,
  type CompleteIdentityVerificationInput,
  depositVirtualAccount,
  failPayment,
  issueBillingKey,
  type IssueBillingKeyInput,
  openPaymentWindow,
  pay,
  type PayInput,
  setPayPending,
} from "./customer.ts";
import { consoleCancel, type ConsoleCancelInput, expireVirtualAccount } from "./console.ts";
import { type RestFault, type RestFaultInput, RestFaults, seededRandom } from "./faults.ts";
import { paymentView } from "./payment-events.ts";
import { type RefundRecord, type RequestLogEntry, SandboxState, type StoreChannels } from "./state.ts";
import {
  type DeliveryAttempt,
  generateWebhookSecret,
  retryScheduleMs,
  WebhookDispatcher,
  type WebhookFaultInput,
  type WebhookMessage,
} from "./webhooks.ts";

export interface SandboxOptions {
  /** The API secret clients must send as `Authorization: PortOne <secret>`; random when omitted. */
  apiSecret?: string;
  /** The secret's own store; `store-<uuid>` when omitted. */
  storeId?: string;
  /** More stores of the same merchant (reachable with an explicit `storeId`). */
  otherStoreIds?: string[];
  /** `whsec_` + base64 key; generated when omitted. */
  webhookSecret?: string;
  webhookUrl?: string;
  /** Multiplies every retry delay (1 = PortOne's real 1..256 minutes; 1e-5 = milliseconds). */
  retryTimeFactor?: number;
  /** Per-attempt webhook timeout in ms (default 30 000; not scaled by retryTimeFactor). */
  webhookTimeoutMs?: number;
  /** Seeds every random choice (jitter, fault fractions, shuffles, generated digits). */
  seed?: number;
  /** Source of every timestamp the API reports (default: real time). */
  clock?: () => Date;
  /** PortOne listener port (default: a free port). */
  port?: number;
  /** Control API port (default: a free port). */
  controlPort?: number;
}

export interface SendWebhookInput {
  type: string;
  data: Record<string, unknown>;
  webhookId?: string;
  timestamp?: string;
}

export interface Sandbox {
  /** API origin; give it to the SDK as `baseUrl`. */
  readonly url: string;
  /** Control API origin (customer simulation, truth, faults). */
  readonly controlUrl: string;
  readonly apiSecret: string;
  readonly storeId: string;
  readonly otherStoreIds: readonly string[];
  readonly merchantId: string;
  readonly webhookSecret: string;
  /** Channels of the main store. */
  readonly channels: StoreChannels;
  readonly retryTimeFactor: number;
  channelsFor(storeId: string): StoreChannels;
  setWebhookUrl(url: string | undefined): void;

  pay(input: PayInput): PortOnePayment.Payment;
  openPaymentWindow(input: PayInput): PortOnePayment.Payment;
  setPayPending(input: PayInput | string, storeId?: string): PortOnePayment.Payment;
  depositVirtualAccount(paymentId: string, storeId?: string): PortOnePayment.Payment;
  failPayment(paymentId: string, reason?: string, storeId?: string): PortOnePayment.Payment;
  issueBillingKey(input: IssueBillingKeyInput): string;
  completeIdentityVerification(input: CompleteIdentityVerificationInput): string;
  completeCancellation(input: CompleteCancellationInput): PortOnePayment.PaymentCancellation | undefined;
  /** A refund made by the merchant's staff in PortOne's console. */
  consoleCancel(input: ConsoleCancelInput): PortOnePayment.Payment;
  /** The virtual account's deposit deadline passes now. */
  expireVirtualAccount(paymentId: string, storeId?: string): PortOnePayment.Payment;

  getPayment(paymentId: string, storeId?: string): PortOnePayment.Payment | undefined;
  refunds(): RefundRecord[];
  requests(): RequestLogEntry[];
  deliveries(): DeliveryAttempt[];
  /** Resolves when no webhook delivery, retry or held batch is pending. */
  idle(): Promise<void>;

  injectFault(input: RestFaultInput): number;
  clearFaults(): void;
  faults(): RestFault[];
  injectWebhookFault(input: WebhookFaultInput): number;
  clearWebhookFaults(): void;
  releaseHeldWebhooks(): void;
  sendWebhook(input: SendWebhookInput): WebhookMessage;
  /** Upper bounds of the five jittered retry delays, in ms, at this sandbox's time factor. */
  retryScheduleMs(): number[];

  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0] ?? 1;
  const clock = options.clock ?? (() => new Date());
  const retryTimeFactor = options.retryTimeFactor ?? 1;
  const state = new SandboxState(
    options.storeId ?? `store-${crypto.randomUUID()}`,
    options.otherStoreIds ?? [],
  );
  const random = seededRandom(seed);
  const webhooks = new WebhookDispatcher({
    secret: options.webhookSecret ?? generateWebhookSecret(),
    url: options.webhookUrl,
    retryTimeFactor,
    timeoutMs: options.webhookTimeoutMs ?? 30_000,
    random: seededRandom(seed + 1),
    clock,
  });
  const closing = new AbortController();
  const ctx: ApiContext = {
    state,
    webhooks,
    clock,
    random,
    apiSecret: options.apiSecret ?? `sandbox-secret-${crypto.randomUUID()}`,
    faults: new RestFaults(seededRandom(seed + 2)),
    closing: closing.signal,
  };

  const sockets = new Set<Socket>();
  const server = createServer((req, res) => void serve(ctx, req, res));
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  let controlShutdown: () => Promise<void> = () => Promise.resolve();
  let closed = false;
  const sandbox: Sandbox = {
    url,
    controlUrl: "",
    apiSecret: ctx.apiSecret,
    storeId: state.mainStoreId,
    otherStoreIds: [...(options.otherStoreIds ?? [])],
    merchantId: state.merchantId,
    webhookSecret: webhooks.secret,
    channels: state.store(state.mainStoreId).channels,
    retryTimeFactor,
    channelsFor: (storeId) => state.store(storeId).channels,
    setWebhookUrl: (webhookUrl) => {
      webhooks.url = webhookUrl;
    },
    pay: (input) => pay(ctx, input),
    openPaymentWindow: (input) => openPaymentWindow(ctx, input),
    setPayPending: (input, storeId) => setPayPending(ctx, input, storeId),
    depositVirtualAccount: (paymentId, storeId) => depositVirtualAccount(ctx, paymentId, storeId),
    failPayment: (paymentId, reason, storeId) => failPayment(ctx, paymentId, reason, storeId),
    issueBillingKey: (input) => issueBillingKey(ctx, input),
    completeIdentityVerification: (input) => completeIdentityVerification(ctx, input),
    completeCancellation: (input) => completeCancellation(ctx, input),
    consoleCancel: (input) => consoleCancel(ctx, input),
    expireVirtualAccount: (paymentId, storeId) => expireVirtualAccount(ctx, paymentId, storeId),
    getPayment: (paymentId, storeId) => {
      const record = state.payment(storeId ?? state.mainStoreId, paymentId);
      return record ? paymentView(ctx, record) : undefined;
    },
    refunds: () => structuredClone(state.refunds),
    requests: () => structuredClone(state.requests),
    deliveries: () => structuredClone(webhooks.deliveries),
    idle: () => webhooks.idle(),
    injectFault: (input) => ctx.faults.inject(input),
    clearFaults: () => ctx.faults.clear(),
    faults: () => ctx.faults.list(),
    injectWebhookFault: (input) => webhooks.injectFault(input),
    clearWebhookFaults: () => webhooks.clearFaults(),
    releaseHeldWebhooks: () => webhooks.releaseHeld(),
    sendWebhook: (input) =>
      webhooks.emit(
        { type: input.type, timestamp: input.timestamp ?? clock().toISOString(), data: input.data },
        { webhookId: input.webhookId },
      ),
    retryScheduleMs: () => retryScheduleMs(retryTimeFactor),
    close: async () => {
      if (closed) return;
      closed = true;
      closing.abort();
      await controlShutdown();
      await webhooks.close();
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await serverClosed;
    },
    [Symbol.asyncDispose]: () => sandbox.close(),
  };
  try {
    const control = startControlServer(sandbox, options.controlPort ?? 0);
    controlShutdown = control.shutdown;
    (sandbox as { controlUrl: string }).controlUrl = control.url;
  } catch (error) {
    await sandbox.close();
    throw error;
  }
  return sandbox;
}

async function serve(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const clientGone = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) clientGone.abort();
  });
  try {
    const chunks: Uint8Array[] = [];
    for await (const chunk of req) {
      chunks.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
    }
    const body = new TextDecoder().decode(concat(chunks));
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
    }
    const outcome = await handleApi(ctx, {
      method: req.method ?? "GET",
      url: new URL(req.url ?? "/", "http://127.0.0.1"),
      headers,
      body,
      clientGone: clientGone.signal,
    });
    if (outcome.kind === "response") {
      const bytes = new TextEncoder().encode(outcome.body);
      // No keep-alive: a client reusing a pooled connection may silently retry a request whose
      // connection we reset, which would hide the `reset` fault from the caller.
      res.writeHead(outcome.status, {
        "content-type": outcome.contentType,
        "content-length": bytes.length,
        connection: "close",
      });
      res.end(bytes);
    } else {
      req.socket.destroy();
    }
  } catch {
    req.socket.destroy();
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

export type {
  CompleteCancellationInput,
  CompleteIdentityVerificationInput,
  ConsoleCancelInput,
  DeliveryAttempt,
  IssueBillingKeyInput,
  PayInput,
  RefundRecord,
  RequestLogEntry,
  RestFaultInput,
  StoreChannels,
  WebhookFaultInput,
  WebhookMessage,
};
