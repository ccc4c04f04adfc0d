/**
 * REST fault injection for the PortOne listener, plus the seeded PRNG every random choice in the
 * sandbox draws from (so a failing test can be replayed with the same `seed`).
 */

/** A deterministic PRNG (mulberry32) returning floats in [0, 1). */
export type Random = () => number;

/** Seeds a PRNG; equal seeds give equal sequences, which keeps jitter and fractions reproducible. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The PortOne operations the sandbox serves, named after the SDK methods. */
export type Operation =
  | "getPayment"
  | "getPayments"
  | "getAllPaymentsByCursor"
  | "getAllPaymentEventsByCursor"
  | "preRegisterPayment"
  | "cancelPayment"
  | "payWithBillingKey"
  | "resendWebhook"
  | "closeVirtualAccount"
  | "getBillingKeyInfo"
  | "deleteBillingKey"
  | "getIdentityVerification";

/**
 * - `latency`: answer normally after `latencyMs`.
 * - `status5xx`: JSON `{type, message}` with `status` (default 500); the SDK throws its operation error.
 * - `html502`: an HTML 502 page as a proxy would send; the SDK's `response.json()` throws `SyntaxError`.
 * - `reset`: destroy the TCP connection without a response; `fetch` throws `TypeError`.
 * - `hang`: never answer until the client goes away or the sandbox closes.
 * - `refusal`: a documented PortOne error (`{type, message}` with `status`, e.g. 502 `PG_PROVIDER` when
 *   the card company refuses a cancel); nothing is done.
 */
export type RestFaultMode = "latency" | "status5xx" | "html502" | "reset" | "hang" | "refusal";

export interface RestFaultInput {
  /** Match by SDK operation name. */
  operation?: Operation;
  /** Match by HTTP method (with or without `path`). */
  method?: string;
  /** Match when the request path (without query) contains this string, or matches this RegExp source. */
  path?: string;
  mode: RestFaultMode;
  latencyMs?: number;
  status?: number;
  /** refusal: the error type answered (default PG_PROVIDER). */
  type?: string;
  /** Only the next N matching calls (after `fraction` is applied). Unlimited when omitted. */
  times?: number;
  /** Share of matching calls that fail, decided by the seeded PRNG. 1 when omitted. */
  fraction?: number;
  /**
   * For mutating calls: do the work (and keep its idempotency record) before failing. This is how a
   * test gets "PortOne refunded but the response was lost".
   */
  applyBeforeFailure?: boolean;
}

export interface RestFault extends RestFaultInput {
  id: number;
  remaining: number;
}

export interface PickedFault {
  mode: RestFaultMode;
  latencyMs: number;
  status: number;
  type: string;
  applyBeforeFailure: boolean;
}

/** Holds the active REST fault rules; the first matching rule wins. */
export class RestFaults {
  #rules: RestFault[] = [];
  #nextId = 1;
  #random: Random;

  constructor(random: Random) {
    this.#random = random;
  }

  inject(input: RestFaultInput): number {
    if (input.fraction !== undefined && !(input.fraction >= 0 && input.fraction <= 1)) {
      throw new RangeError("fraction must be within 0..1");
    }
    if (input.times !== undefined && !(Number.isInteger(input.times) && input.times > 0)) {
      throw new RangeError("times must be a positive integer");
    }
    const id = this.#nextId++;
    this.#rules.push({ ...input, id, remaining: input.times ?? Infinity });
    return id;
  }

  clear(): void {
    this.#rules = [];
  }

  list(): RestFault[] {
    return this.#rules.map((rule) => ({ ...rule }));
  }

  /** Decides whether this call fails; consumes one of `times` when it does. */
  pick(operation: Operation | undefined, method: string, path: string): PickedFault | undefined {
    for (const rule of this.#rules) {
      if (rule.remaining <= 0) continue;
      if (rule.operation !== undefined && rule.operation !== operation) continue;
      if (rule.method !== undefined && rule.method.toUpperCase() !== method.toUpperCase()) continue;
      if (rule.path !== undefined && !path.includes(rule.path) && !safeRegExp(rule.path)?.test(path)) {
        continue;
      }
      if (rule.fraction !== undefined && this.#random() >= rule.fraction) continue;
      rule.remaining--;
      return {
        mode: rule.mode,
        latencyMs: rule.latencyMs ?? 1000,
        status: rule.status ?? 500,
        type: rule.type ?? "PG_PROVIDER",
        applyBeforeFailure: rule.applyBeforeFailure ?? false,
      };
    }
    return undefined;
  }
}

function safeRegExp(source: string): RegExp | undefined {
  try {
    return new RegExp(source);
  } catch {
    return undefined;
  }
}
