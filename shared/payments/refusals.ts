/**
 * Refusals raised by our reservation functions in the database (private.reserve_payment_attempt,
 * private.reserve_billing_attempt; migration 20261201170100): a SQLSTATE of class PT and the message the
 * client sees. Turned here into the same AppErrors the TypeScript checks they replaced threw.
 */
import { AppError, type ErrorCode } from "../infra/errors.ts";

const refusalCodes: Readonly<Record<string, ErrorCode>> = {
  PT001: "not_found",
  PT002: "order_not_payable",
  PT003: "payment_in_progress",
  PT004: "billing_key_not_active",
};

/** The AppError for a refusal raised by one of those functions; any other error unchanged. */
export function asRefusal(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  const mapped = typeof code === "string" ? refusalCodes[code] : undefined;
  if (mapped === undefined || !(error instanceof Error)) return error;
  return new AppError(mapped, error.message);
}

/** Runs a call of one of those functions, its refusals thrown as AppErrors. */
export async function refusing<T>(call: PromiseLike<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    throw asRefusal(error);
  }
}
