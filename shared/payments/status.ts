/**
 * PortOne's payment statuses as a closed union, mirrored by the `payments.status` check constraint and the
 * status-machine trigger in supabase/migrations. Adding a status means changing both; the `satisfies`
 * tables below make the type checker point at every place that must handle it.
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

/**
 * How far along a payment is. Two snapshots with the same statusChangedAt are ordered by this rank (then
 * by cancelled amount), so an older view never replaces a newer one even when both carry the same second.
 */
export const statusRank = {
  READY: 0,
  FAILED: 1,
  PAY_PENDING: 2,
  VIRTUAL_ACCOUNT_ISSUED: 3,
  PAID: 4,
  PARTIAL_CANCELLED: 5,
  CANCELLED: 6,
} as const satisfies Record<PaymentStatus, number>;

/**
 * Legal transitions; the database trigger enforces the same table. Same-status updates are always allowed.
 * We see PortOne only through snapshots, so every state reachable forward is legal (READY may jump to
 * PARTIAL_CANCELLED when the payment was paid and partly refunded before our first sync). Nothing returns
 * to READY.
 */
export const allowedNextStatuses = {
  READY: ["PAY_PENDING", "VIRTUAL_ACCOUNT_ISSUED", "PAID", "FAILED", "PARTIAL_CANCELLED", "CANCELLED"],
  PAY_PENDING: ["VIRTUAL_ACCOUNT_ISSUED", "PAID", "FAILED", "PARTIAL_CANCELLED", "CANCELLED"],
  VIRTUAL_ACCOUNT_ISSUED: ["PAID", "FAILED", "PARTIAL_CANCELLED", "CANCELLED"],
  // PortOne lets a customer retry the same paymentId after a failure
  FAILED: ["PAY_PENDING", "VIRTUAL_ACCOUNT_ISSUED", "PAID", "PARTIAL_CANCELLED", "CANCELLED"],
  PAID: ["PARTIAL_CANCELLED", "CANCELLED"],
  PARTIAL_CANCELLED: ["CANCELLED"],
  CANCELLED: [],
} as const satisfies Record<PaymentStatus, readonly PaymentStatus[]>;

export function canTransition(from: PaymentStatus, to: PaymentStatus): boolean {
  return from === to || (allowedNextStatuses[from] as readonly PaymentStatus[]).includes(to);
}
