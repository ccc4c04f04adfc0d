/**
 * Pieces the functions' contracts share. Like everything in shared/contract/, this runs in apps' browsers
 * too: it imports only shared/infra/deps-client.ts and other contract-safe modules.
 */
import { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import { paymentStatuses } from "../payments/status.ts";

export { type PayMethod, payMethods } from "./pay-methods.ts";

export const paymentIdSchema = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, "must be a paymentId from prepare");

/** A calendar instant as our functions write it (ISO 8601 with an offset). */
export const timestamp = z.iso.datetime({ offset: true });

export const PaymentStatus = z.enum(paymentStatuses);

export const OrderSummary = z.strictObject({ id: z.uuid(), status: z.string() });

export const VirtualAccount = z.strictObject({
  bank: z.string().nullable(),
  accountNumber: z.string(),
  holder: z.string().nullable(),
  expiresAt: timestamp.nullable(),
});

/** Codes every function behind shared/infra/http.ts can answer, whatever it does. */
export const wrapperErrors = [
  "method_not_allowed",
  "payload_too_large",
  "unsupported_media_type",
  "invalid_json",
  "invalid_request",
  "internal",
  "database_unavailable",
] as const satisfies readonly ErrorCode[];

/** Codes of functions that need a signed-in user (shared/infra/auth.ts). */
export const userAuthErrors = ["unauthorized", "auth_unavailable"] as const satisfies readonly ErrorCode[];

/** Codes of an Idempotency-Key (shared/infra/idempotency.ts). */
export const idempotencyErrors = [
  "idempotency_key_reused",
  "request_in_progress",
] as const satisfies readonly ErrorCode[];

/** Codes of calls that reach PortOne (shared/portone/gateway.ts). */
export const portoneErrors = ["portone_error", "portone_unavailable"] as const satisfies readonly ErrorCode[];

/** Every error answer: `{ error: { code, message, …details } }` (details such as `field` vary by code). */
export function errorBody<const C extends readonly ErrorCode[]>(codes: C) {
  return z.strictObject({
    error: z.looseObject({
      code: z.enum(codes as unknown as [C[number], ...C[number][]]),
      message: z.string(),
      /** `invalid_request`: the field that failed validation (null for the body as a whole). */
      field: z.string().nullable().optional(),
    }),
  });
}
