/**
 * PortOne's payment statuses as a closed union, mirrored by the `payments.status` check constraint. The
 * status machine (which moves are legal, how far along each status is) lives in the database beside the
 * apply that uses it: `private.payment_can_transition`, `private.payment_status_rank` and the
 * `payments_enforce_rules` trigger. Adding a status means changing those and this list together.
 */
export const paymentStatuses = [
  "READY",
  "PAY_PENDING",
  "VIRTUAL_ACCOUNT_ISSUED",
  "PAID",
  "FAILED",
  "PARTIAL_CANCELLED",
  "CANCELLED",
] as const;
export type PaymentStatus = (typeof paymentStatuses)[number];

export function isPaymentStatus(value: unknown): value is PaymentStatus {
  return typeof value === "string" && (paymentStatuses as readonly string[]).includes(value);
}
