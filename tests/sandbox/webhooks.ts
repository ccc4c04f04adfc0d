/**
 * Webhook signing (Standard Webhooks, WebCrypto only, independent of the SDK), delivery with
 * PortOne's retry schedule and full jitter, and delivery fault modes.
 *
 * Choices the docs leave open, made here on purpose:
 * - `webhook-id` is stable across retries, duplicates and manual resends of one message (Standard
 *   Webhooks says so, and PortOne's `resendWebhook` answers with the same `webhook.id` and counts
 *   `currentExecutionCount` per id).
 * - `webhook-timestamp` is real Unix seconds at each attempt (receivers check it against their own
 *   clock); the payload `timestamp` comes from the sandbox clock and never changes across retries.
 * - The delivery timeout is `webhookTimeoutMs` (default 30 s) and is NOT multiplied by
 *   `retryTimeFactor`: scaling 30 s by 1e-5 would time out every receiver.
 */
import type { PortOnePayment } from "../../shared/infra/deps.ts";
import { ApiError, type PaymentStatus } from "./state.ts";
import type { Random } from "./faults.ts";

/** PortOne's retry delays after the first attempt, in minutes (5 retries, then give up). */
export const RETRY_SCHEDULE_MINUTES: readonly number[] = [1, 4, 16, 64, 256];

/** How many manual resends one webhook id allows before MAX_WEBHOOK_RETRY_COUNT_REACHED. */
export const MAX_MANUAL_RESENDS = 5;

/** Upper bounds of the jittered retry delays for a time factor (full jitter draws from [0, bound)). */
export function retryScheduleMs(retryTimeFactor: number): number[] {
  return RETRY_SCHEDULE_MINUTES.map((minutes) => minutes * 60_000 * retryTimeFactor);
}

export interface WebhookPayload {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/** Generates a Standard Webhooks secret: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${toBase64(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** `v1,` + base64 HMAC-SHA256 over `${id}.${timestamp}.${body}`, keyed with the decoded secret. */
export async function signWebhook(
  secret: string,
  id: string,
  timestamp: string,
  body: string,
): Promise<string> {
  const raw = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  const key = await crypto.subtle.importKey(
    "raw",
    Uint8Array.from(atob(raw), (char) => char.charCodeAt(0)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${id}.${timestamp}.${body}`));
  return `v1,${toBase64(new Uint8Array(mac))}`;
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

export type WebhookFaultMode =
  | "duplicate"
  | "outOfOrder"
  | "delay"
  | "unknownType"
  | "badSignature"
  | "staleTimestamp";

export interface WebhookFaultInput {
  mode: WebhookFaultMode;
  /** Only the next N matching messages; every matching message while set when omitted. */
  times?: number;
  /** Only messages of this event type (e.g. `Transaction.Paid`). */
  type?: string;
  /** duplicate: how many times the same message is delivered (default 2). */
  copies?: number;
  /** duplicate: send the copies at once (default true) or one after another. */
  concurrent?: boolean;
  /** delay: milliseconds before the first attempt (default 100). */
  delayMs?: number;
  /** outOfOrder: how many messages are held before release (default 2). */
  batchSize?: number;
  /** outOfOrder: release order (default reverse). */
  order?: "reverse" | "shuffle";
  /** outOfOrder: release an incomplete batch after this many ms (default 500). */
  holdMs?: number;
  /** unknownType: the type sent instead (default `Transaction.SomethingNew`). */
  unknownType?: string;
}

interface WebhookFault extends WebhookFaultInput {
  id: number;
  remaining: number;
}

export interface DeliveryAttempt {
  webhookId: string;
  type: string;
  payload: WebhookPayload;
  body: string;
  /** 1 for the first send, up to 6 with retries; manual resends count on from the message's total. */
  attempt: number;
  /** Which duplicate copy this chain belongs to (0 without the duplicate fault). */
  copy: number;
  manual: boolean;
  url: string;
  headers: Record<string, string>;
  startedAt: string;
  finishedAt?: string;
  status?: number;
  error?: string;
  ok?: boolean;
  /** The jittered wait before the next attempt, when one was scheduled. */
  retryDelayMs?: number;
  faults: WebhookFaultMode[];
}

export interface WebhookMessage {
  id: string;
  payload: WebhookPayload;
  body: string;
  paymentKey?: string;
  paymentStatus?: PaymentStatus;
  trigger?: PortOnePayment.PaymentWebhookTrigger;
  triggeredAt: string;
  executions: number;
  manualResends: number;
  last?: DeliveryAttempt;
  faults: WebhookFaultMode[];
  badSignature: boolean;
  stale: boolean;
}

export interface WebhookDispatcherOptions {
  secret: string;
  url?: string;
  retryTimeFactor: number;
  timeoutMs: number;
  random: Random;
  clock: () => Date;
}

export interface EmitOptions {
  webhookId?: string;
  paymentKey?: string;
  paymentStatus?: PaymentStatus;
  trigger?: PortOnePayment.PaymentWebhookTrigger;
}

type Timer = ReturnType<typeof setTimeout>;

interface Job {
  message: WebhookMessage;
  copies: number;
  concurrent: boolean;
}

export class WebhookDispatcher {
  url: string | undefined;
  readonly secret: string;
  readonly deliveries: DeliveryAttempt[] = [];
  readonly messages = new Map<string, WebhookMessage>();
  #options: WebhookDispatcherOptions;
  #faults: WebhookFault[] = [];
  #nextFaultId = 1;
  #pending = 0;
  #idleWaiters: (() => void)[] = [];
  #timers = new Set<Timer>();
  #timerWakers = new Map<Timer, () => void>();
  #aborts = new Set<AbortController>();
  #held: Job[] = [];
  #heldRule: WebhookFault | undefined;
  #holdTimer: Timer | undefined;
  #closed = false;
  #client: Deno.HttpClient;

  constructor(options: WebhookDispatcherOptions) {
    this.#options = options;
    this.secret = options.secret;
    this.url = options.url;
    // A private client lets close() drop pooled keep-alive connections to receivers.
    this.#client = Deno.createHttpClient({});
  }

  injectFault(input: WebhookFaultInput): number {
    if (input.times !== undefined && !(Number.isInteger(input.times) && input.times > 0)) {
      throw new RangeError("times must be a positive integer");
    }
    const id = this.#nextFaultId++;
    this.#faults.push({ ...input, id, remaining: input.times ?? Infinity });
    return id;
  }

  clearFaults(): void {
    this.#faults = [];
    this.#releaseHeld();
  }

  /** Creates a message and starts delivering it; returns it even when no URL is configured. */
  emit(payload: WebhookPayload, options: EmitOptions = {}): WebhookMessage {
    const matched = this.#faults.filter((fault) =>
      fault.remaining > 0 && (fault.type === undefined || fault.type === payload.type)
    );
    for (const fault of matched) fault.remaining--;
    const has = (mode: WebhookFaultMode) => matched.find((fault) => fault.mode === mode);
    const unknown = has("unknownType");
    const sent: WebhookPayload = unknown
      ? { ...payload, type: unknown.unknownType ?? "Transaction.SomethingNew" }
      : payload;
    const body = JSON.stringify(sent);
    const message: WebhookMessage = {
      id: options.webhookId ?? `webhook-${crypto.randomUUID()}`,
      payload: sent,
      body,
      paymentKey: options.paymentKey,
      paymentStatus: options.paymentStatus,
      trigger: options.trigger,
      triggeredAt: this.#options.clock().toISOString(),
      executions: 0,
      manualResends: 0,
      faults: matched.map((fault) => fault.mode),
      badSignature: has("badSignature") !== undefined,
      stale: has("staleTimestamp") !== undefined,
    };
    this.messages.set(message.id, message);
    if (this.url === undefined || this.#closed) return message;

    const duplicate = has("duplicate");
    const job: Job = {
      message,
      copies: duplicate ? Math.max(1, duplicate.copies ?? 2) : 1,
      concurrent: duplicate?.concurrent ?? true,
    };
    this.#pending++;
    const outOfOrder = has("outOfOrder");
    const delay = has("delay");
    if (outOfOrder) {
      this.#hold(job, outOfOrder);
    } else if (delay) {
      void this.#sleep(delay.delayMs ?? 100).then((woke) => woke ? this.#run(job) : this.#done());
    } else {
      void this.#run(job);
    }
    return message;
  }

  /** One manual re-send of a message with the same id and body (no automatic retries). */
  resend(webhookId: string): WebhookMessage {
    const message = this.messages.get(webhookId);
    if (!message) throw new ApiError(404, "WEBHOOK_NOT_FOUND", `webhook ${webhookId} not found`);
    if (message.manualResends >= MAX_MANUAL_RESENDS) {
      throw new ApiError(
        400,
        "MAX_WEBHOOK_RETRY_COUNT_REACHED",
        "manual resend limit reached for this webhook",
      );
    }
    message.manualResends++;
    if (this.url !== undefined && !this.#closed) {
      this.#pending++;
      void this.#attempt(message, 0, true).finally(() => this.#done());
    }
    return message;
  }

  /** Resolves once no delivery, retry or held batch is pending. */
  idle(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Releases held out-of-order batches now instead of waiting for them to fill. */
  releaseHeld(): void {
    this.#releaseHeld();
  }

  toPaymentWebhook(message: WebhookMessage): PortOnePayment.PaymentWebhook {
    const last = message.last;
    const status: PortOnePayment.PaymentWebhookStatus | undefined =
      last === undefined || last.ok === undefined
        ? undefined
        : last.ok
        ? "SUCCEEDED"
        : last.status !== undefined
        ? "FAILED_NOT_OK_RESPONSE"
        : "FAILED_UNEXPECTED_ERROR";
    return {
      id: message.id,
      url: last?.url ?? this.url ?? "",
      isAsync: true,
      currentExecutionCount: message.executions,
      maxExecutionCount: RETRY_SCHEDULE_MINUTES.length + 1 + MAX_MANUAL_RESENDS,
      triggeredAt: message.triggeredAt,
      request: { body: message.body, requestedAt: last?.startedAt ?? message.triggeredAt },
      ...(message.paymentStatus ? { paymentStatus: message.paymentStatus } : {}),
      ...(message.trigger ? { trigger: message.trigger } : {}),
      ...(status ? { status } : {}),
      ...(last?.status !== undefined && last.finishedAt
        ? { response: { code: String(last.status), header: "", body: "", respondedAt: last.finishedAt } }
        : {}),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#held = [];
    if (this.#holdTimer !== undefined) clearTimeout(this.#holdTimer);
    for (const controller of this.#aborts) controller.abort();
    for (const timer of this.#timers) {
      clearTimeout(timer);
      this.#timerWakers.get(timer)?.();
    }
    this.#timers.clear();
    this.#pending = 0;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
    // Let aborted fetches settle before the client goes away.
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.#client.close();
  }

  #hold(job: Job, rule: WebhookFault): void {
    this.#held.push(job);
    this.#heldRule = rule;
    if (this.#held.length >= (rule.batchSize ?? 2)) {
      this.#releaseHeld();
    } else if (this.#holdTimer === undefined) {
      this.#holdTimer = setTimeout(() => {
        this.#holdTimer = undefined;
        this.#releaseHeld();
      }, rule.holdMs ?? 500);
    }
  }

  #releaseHeld(): void {
    if (this.#holdTimer !== undefined) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = undefined;
    }
    const batch = this.#held.splice(0);
    if (batch.length === 0) return;
    if (this.#heldRule?.order === "shuffle") {
      for (let i = batch.length - 1; i > 0; i--) {
        const j = Math.floor(this.#options.random() * (i + 1));
        [batch[i], batch[j]] = [batch[j] as Job, batch[i] as Job];
      }
    } else {
      batch.reverse();
    }
    // Sequential first attempts so the receiver really sees the released order.
    void (async () => {
      for (const job of batch) {
        await this.#run(job, true);
      }
    })();
  }

  /** Runs all copies of a job; resolves after the first attempts when `firstOnly` ordering matters. */
  #run(job: Job, waitFirstAttempt = false): Promise<void> {
    const chains: Promise<void>[] = [];
    let firstAttempts: Promise<void> = Promise.resolve();
    // Each extra copy is an independent chain, so it holds its own pending slot.
    this.#pending += job.copies - 1;
    const startChain = (copy: number) => {
      let markFirst!: () => void;
      const first = new Promise<void>((resolve) => markFirst = resolve);
      chains.push(
        this.#chain(job.message, copy, markFirst).finally(() => {
          markFirst();
          this.#done();
        }),
      );
      return first;
    };
    if (job.concurrent) {
      const firsts = Array.from({ length: job.copies }, (_, copy) => startChain(copy));
      firstAttempts = Promise.all(firsts).then(() => {});
    } else {
      firstAttempts = (async () => {
        for (let copy = 0; copy < job.copies; copy++) await startChain(copy);
      })();
    }
    return waitFirstAttempt ? firstAttempts : Promise.resolve();
  }

  async #chain(message: WebhookMessage, copy: number, firstDone: () => void): Promise<void> {
    const bounds = retryScheduleMs(this.#options.retryTimeFactor);
    for (let attempt = 1; attempt <= bounds.length + 1; attempt++) {
      if (this.#closed) return;
      const record = await this.#attempt(message, copy, false, attempt);
      if (attempt === 1) firstDone();
      if (record?.ok || record === undefined) return;
      const bound = bounds[attempt - 1];
      if (bound === undefined) return; // gave up after the last retry
      const delay = this.#options.random() * bound;
      record.retryDelayMs = delay;
      if (!(await this.#sleep(delay))) return;
    }
  }

  async #attempt(
    message: WebhookMessage,
    copy: number,
    manual: boolean,
    attempt = message.executions + 1,
  ): Promise<DeliveryAttempt | undefined> {
    const url = this.url;
    if (url === undefined || this.#closed) return undefined;
    message.executions++;
    const nowSeconds = Math.floor(Date.now() / 1000);
    // 10 minutes back is well past the ±5 minute tolerance of every verifier.
    const timestamp = String(message.stale ? nowSeconds - 600 : nowSeconds);
    const secret = message.badSignature ? generateWebhookSecret() : this.secret;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "webhook-id": message.id,
      "webhook-timestamp": timestamp,
      "webhook-signature": await signWebhook(secret, message.id, timestamp, message.body),
    };
    const record: DeliveryAttempt = {
      webhookId: message.id,
      type: message.payload.type,
      payload: message.payload,
      body: message.body,
      attempt,
      copy,
      manual,
      url,
      headers,
      startedAt: new Date().toISOString(),
      faults: message.faults,
    };
    this.deliveries.push(record);
    message.last = record;
    const controller = new AbortController();
    this.#aborts.add(controller);
    const timer = setTimeout(
      () => controller.abort(new Error("webhook delivery timed out")),
      this.#options.timeoutMs,
    );
    try {
      const response = await fetch(url, {
        method: "POST",
        headers,
        body: message.body,
        signal: controller.signal,
        client: this.#client,
      });
      await response.body?.cancel();
      record.status = response.status;
      record.ok = response.ok;
    } catch (error) {
      record.ok = false;
      record.error = controller.signal.aborted && !this.#closed
        ? "timeout"
        : error instanceof Error
        ? error.message
        : String(error);
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(controller);
      record.finishedAt = new Date().toISOString();
    }
    return record;
  }

  /** Resolves true after `ms`, or false as soon as the dispatcher closes. */
  #sleep(ms: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#timerWakers.delete(timer);
        resolve(!this.#closed);
      }, ms);
      this.#timers.add(timer);
      this.#timerWakers.set(timer, () => resolve(false));
    });
  }

  #done(): void {
    if (this.#pending > 0) this.#pending--;
    if (this.#pending === 0) { for (const resolve of this.#idleWaiters.splice(0)) resolve(); }
  }
}
