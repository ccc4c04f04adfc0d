/**
 * The `billing-key` function's contract: POST { billingKey } register · GET list ·
 * POST /{id}/pay { orderId } + Idempotency-Key · DELETE /{id}.
 */
import { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import {
  idempotencyErrors,
  OrderSummary,
  PaymentStatus,
  portoneErrors,
  timestamp,
  userAuthErrors,
  wrapperErrors,
} from "./common.ts";

/**
 * PortOne billing keys are opaque; the key becomes part of PortOne's URL path, so only characters that can
 * never change a path (no `/`, `.`, `%`, `?`, `#`) are accepted.
 */
export const billingKeyPattern = /^[A-Za-z0-9_-]{1,256}$/;
const billingKeySchema = z.string().regex(billingKeyPattern, "must be a billing key from the browser SDK");

export const RegisterBillingKeyRequest = z.strictObject({ billingKey: billingKeySchema });
export type RegisterBillingKeyRequest = z.infer<typeof RegisterBillingKeyRequest>;

/** What a client may know about a saved card. */
export const BillingKeyView = z.strictObject({
  id: z.uuid(),
  status: z.enum(["ISSUED", "DELETED"]),
  pgProvider: z.string().nullable(),
  cardIssuer: z.string().nullable(),
  cardBrand: z.string().nullable(),
  cardType: z.string().nullable(),
  cardNumberMasked: z.string().nullable(),
  cardName: z.string().nullable(),
  issuedAt: timestamp.nullable(),
  deletedAt: timestamp.nullable(),
  createdAt: timestamp,
});
export type BillingKeyView = z.infer<typeof BillingKeyView>;

export const BillingKeyList = z.strictObject({ billingKeys: z.array(BillingKeyView) });
export type BillingKeyList = z.infer<typeof BillingKeyList>;

export const PayWithBillingKeyRequest = z.strictObject({ orderId: z.uuid() });
export type PayWithBillingKeyRequest = z.infer<typeof PayWithBillingKeyRequest>;

export const BillingPaymentResponse = z.strictObject({
  paymentId: z.string(),
  status: PaymentStatus,
  order: OrderSummary,
});
export type BillingPaymentResponse = z.infer<typeof BillingPaymentResponse>;

/** Every route of the function shares one list (the function answers them through one handler). */
export const billingKeyErrors = [
  ...wrapperErrors,
  ...userAuthErrors,
  ...idempotencyErrors,
  ...portoneErrors,
  "forbidden",
  "not_found",
  "billing_key_not_active",
  "order_not_payable",
  "payment_in_progress",
  "payment_mismatch",
  "payment_declined",
  "misconfigured",
] as const satisfies readonly ErrorCode[];
