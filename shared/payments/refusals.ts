/**
 * Refusals raised by our functions in the database — the reservations (private.reserve_payment_attempt,
 * private.reserve_billing_attempt: class PT, migration 20261201170100; private.reserve_cancellation: class PC,
 * migration 20261201170200) — as a SQLSTATE, the message the client sees and, for some, their details as
 * JSON in DETAIL. Turned here into the same AppErrors the TypeScript checks they replaced threw.
 */
import { AppError, type ErrorCode } from "../infra/errors.ts";

const refusalCodes: Readonly<Record<string, ErrorCode>> = {
  PT001: "not_found",
  PT002: "order_not_payable",
  PT003: "payment_in_progress",
  PT004: "billing_key_not_active",
  PC001: "not_found",
  PC002: "forbidden",
  PC003: "idempotency_key_reused",
  PC004: "cancel_in_progress",
  PC005: "payment_not_cancellable",
  PC006: "cancel_amount_exceeds_cancellable",
  PC007: "refund_account_required",
  PC008: "invalid_refund_account",
};

/** The AppError for a refusal raised by one of those functions; any other error unchanged. */
export function asRefusal(error: unknown): unknown {
  const { code, detail } = (error ?? {}) as { code?: unknown; detail?: unknown };
  const mapped = typeof code === "string" ? refusalCodes[code] : undefined;
  if (mapped === undefined || !(error instanceof Error)) return error;
  return new AppError(
    mapped,
    error.message,
    typeof detail === "string" ? { details: JSON.parse(detail) } : {},
  );
}

/** Runs a call of one of those functions, its refusals thrown as AppErrors. */
export async function refusing<T>(call: PromiseLike<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    throw asRefusal(error);
  }
}
