/**
 * The typed client apps use to call our functions: one call per operation over supabase-js's
 * `functions.invoke`, typed from shared/contract/ (the schemas the functions validate with). Every call
 * resolves, never throws, to `{ ok: true, data }` or `{ ok: false, error }` whose `error.code` is one of
 * that operation's codes, so a `switch` over it is checked by the compiler.
 *
 * Runs in a browser bundle and in Deno: it imports only the contract (zod), never postgres, the PortOne
 * SDK or supabase-js itself (pass your own client, e.g. `createClient<Database>(…)`).
 */
import type { ErrorCode } from "../infra/errors.ts";
import {
  type ErrorCodeOf,
  type Operation,
  type OperationName,
  operations,
  type RequestOf,
  type ResponseOf,
} from "../contract/operations.ts";

/** What we need of a SupabaseClient (any supabase-js v2 client has it). */
export interface FunctionsInvoker {
  readonly functions: {
    invoke(
      functionName: string,
      options?: {
        body?: Record<string, unknown>;
        headers?: Record<string, string>;
        method?: "GET" | "POST" | "DELETE";
      },
    ): Promise<{ data: unknown; error: unknown; response?: Response }>;
  };
}

/** Outcomes the client itself reports: no answer reached us, or an answer outside the contract. */
export type TransportErrorCode = "network_error" | "unexpected_response";

export interface CallError<C extends string> {
  readonly code: C | TransportErrorCode;
  readonly message: string;
  /** `invalid_request`: the field that failed validation. */
  readonly field?: string | null;
  /** Further, code-specific details (e.g. `pgCode`/`pgMessage` of `payment_declined`). */
  readonly [detail: string]: unknown;
}

export type CallResult<N extends OperationName> =
  | {
    readonly ok: true;
    readonly status: number;
    readonly data: ResponseOf<N>;
    /** The answer was replayed from an earlier request with the same Idempotency-Key. */
    readonly replayed: boolean;
    /** The key this call was sent with (operations that take one). */
    readonly idempotencyKey?: string;
  }
  | {
    readonly ok: false;
    /** HTTP status; 0 when no answer arrived. */
    readonly status: number;
    readonly error: CallError<ErrorCodeOf<N>>;
    /** Retry the same logical request with this key (`{ idempotencyKey }`) to be sure it runs once. */
    readonly idempotencyKey?: string;
  };

export interface CallOptions {
  /**
   * The Idempotency-Key of this logical request. Omitted: a new random key. Pass a failed result's
   * `idempotencyKey` to retry the same request: it then runs at most once.
   */
  readonly idempotencyKey?: string;
  /**
   * How often a keyed call is resent (same key) when no answer arrived, the answer was a 5xx or
   * `request_in_progress`. Default 2; unkeyed calls are never resent.
   */
  readonly retries?: number;
}

const transientStatuses = new Set([0, 500, 502, 503, 504]);

function newIdempotencyKey(): string {
  return crypto.randomUUID();
}

async function errorOf(error: unknown): Promise<{ status: number; error: CallError<string> }> {
  // FunctionsHttpError carries the Response; FunctionsFetchError / FunctionsRelayError mean no answer of ours
  const context = (error as { context?: unknown })?.context;
  if (context instanceof Response) {
    const payload = await context.clone().json().catch(() => null) as
      | { error?: { code?: unknown; message?: unknown } }
      | null;
    const body = payload?.error;
    if (body && typeof body.code === "string" && typeof body.message === "string") {
      return { status: context.status, error: body as CallError<string> };
    }
    const text = await context.text().catch(() => "");
    return {
      status: context.status,
      error: { code: "unexpected_response", message: `HTTP ${context.status}: ${text.slice(0, 200)}` },
    };
  }
  return {
    status: 0,
    error: { code: "network_error", message: error instanceof Error ? error.message : String(error) },
  };
}

async function callOnce(
  client: FunctionsInvoker,
  op: Operation,
  path: string,
  body: unknown,
  idempotencyKey: string | undefined,
): Promise<
  { ok: true; status: number; data: unknown; replayed: boolean } | {
    ok: false;
    status: number;
    error: CallError<string>;
  }
> {
  let outcome: Awaited<ReturnType<FunctionsInvoker["functions"]["invoke"]>>;
  try {
    outcome = await client.functions.invoke(path, {
      method: op.method,
      ...(body === undefined ? {} : { body: body as Record<string, unknown> }),
      ...(idempotencyKey ? { headers: { "idempotency-key": idempotencyKey } } : {}),
    });
  } catch (error) {
    return { ok: false, ...(await errorOf(error)) };
  }
  if (outcome.error) return { ok: false, ...(await errorOf(outcome.error)) };
  return {
    ok: true,
    status: outcome.response?.status ?? 200,
    data: outcome.data,
    replayed: outcome.response?.headers.get("idempotent-replayed") === "true",
  };
}

async function call<N extends OperationName>(
  client: FunctionsInvoker,
  name: N,
  body: unknown,
  pathParams: Record<string, string>,
  options: CallOptions = {},
): Promise<CallResult<N>> {
  const op: Operation = operations[name];
  const path = op.fn +
    op.subPath.replace(/\{([A-Za-z]+)\}/g, (_, key: string) => encodeURIComponent(pathParams[key] ?? ""));
  const key = op.idempotencyKey === "none" ? undefined : options.idempotencyKey ?? newIdempotencyKey();
  const retries = key === undefined ? 0 : Math.max(0, options.retries ?? 2);
  for (let attempt = 0;; attempt++) {
    const result = await callOnce(client, op, path, body, key);
    const transient = !result.ok &&
      (transientStatuses.has(result.status) || result.error.code === "request_in_progress");
    if (!transient || attempt >= retries) {
      return { ...result, ...(key === undefined ? {} : { idempotencyKey: key }) } as CallResult<N>;
    }
    await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
  }
}

/** The error codes an operation can answer (for exhaustive handling or display). */
export function errorCodesOf<N extends OperationName>(name: N): readonly ErrorCode[] {
  return operations[name].errors;
}

/** Our functions, typed. `supabase` is your supabase-js client, signed in as the user. */
export function createPaymentsClient(supabase: FunctionsInvoker) {
  return {
    /** Turns a pending order into a payment attempt; spread `data` into `PortOne.requestPayment`. */
    prepare: (body: RequestOf<"prepare">, options?: CallOptions) =>
      call(supabase, "prepare", body, {}, options),
    /** After the payment window closed: the payment as PortOne reports it, applied to the order. */
    confirm: (body: RequestOf<"confirm">) => call(supabase, "confirm", body, {}),
    /** Refunds (admins, or the payer under CUSTOMER_CANCEL_POLICY=allow); always keyed. */
    cancel: (body: RequestOf<"cancel">, options?: CallOptions) => call(supabase, "cancel", body, {}, options),
    billingKeys: {
      register: (body: RequestOf<"registerBillingKey">) => call(supabase, "registerBillingKey", body, {}),
      list: () => call(supabase, "listBillingKeys", undefined, {}),
      pay: (billingKeyId: string, body: RequestOf<"payWithBillingKey">, options?: CallOptions) =>
        call(supabase, "payWithBillingKey", body, { billingKeyId }, options),
      delete: (billingKeyId: string) => call(supabase, "deleteBillingKey", undefined, { billingKeyId }),
    },
    identity: {
      /** An identityVerificationId for the browser SDK's `requestIdentityVerification`. */
      prepare: () => call(supabase, "prepareIdentity", {}, {}),
      verify: (body: RequestOf<"verifyIdentity">) => call(supabase, "verifyIdentity", body, {}),
      status: () => call(supabase, "identityStatus", undefined, {}),
    },
  };
}

export type PaymentsClient = ReturnType<typeof createPaymentsClient>;
