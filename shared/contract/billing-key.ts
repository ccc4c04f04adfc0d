/**
 * The `billing-key` function's contract: POST { billingKey } register · GET list ·
 * POST /{id}/pay { orderId } + Idempotency-Key · DELETE /{id}.
 */
import { z } from "../infra/deps-client.ts";
import type { PaymentView } from "../payments/sync.ts";

/** PortOne billing keys are opaque; this only refuses what cannot be one (and keeps paths/queries sane). */
const billingKeySchema = z.string().regex(
  /^[\x21-\x7e]{1,256}$/,
  "must be a billing key from the browser SDK",
);

export const RegisterBillingKeyRequest = z.strictObject({ billingKey: billingKeySchema });
export type RegisterBillingKeyRequest = z.infer<typeof RegisterBillingKeyRequest>;

/** What a client may know about a saved card. */
export interface BillingKeyView {
  readonly id: string;
  readonly status: "ISSUED" | "DELETED";
  readonly pgProvider: string | null;
  readonly cardIssuer: string | null;
  readonly cardBrand: string | null;
  readonly cardType: string | null;
  readonly cardNumberMasked: string | null;
  readonly cardName: string | null;
  readonly issuedAt: string | null;
  readonly deletedAt: string | null;
  readonly createdAt: string;
}

export const PayWithBillingKeyRequest = z.strictObject({ orderId: z.uuid() });
export type PayWithBillingKeyRequest = z.infer<typeof PayWithBillingKeyRequest>;

export interface BillingPaymentResponse {
  readonly paymentId: string;
  readonly status: PaymentView["status"];
  readonly order: PaymentView["order"];
}
