/**
 * "Is this the caller's?" checks run before anything is written for a request (the Idempotency-Key claim
 * included), so a request about someone else's order or payment leaves no row anywhere. Someone else's
 * resource and a missing one both answer 404: a 403 would confirm that it exists.
 *
 * As Idempotency-Key requirements they cost no round trip of their own: they are evaluated inside the
 * claim's statement (shared/infra/idempotency.ts).
 */
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import type { Sql } from "../infra/db.ts";
import type { Requirement } from "../infra/idempotency.ts";

/** The order is the caller's. */
export function ownOrder(caller: Caller, orderId: string): Requirement {
  return {
    holds: (sql) =>
      sql`exists (select 1 from public.orders where id = ${orderId}::uuid and user_id = ${caller.userId})`,
    otherwise: () => new AppError("not_found", "Order not found"),
  };
}

/** The saved card is the caller's. */
export function ownBillingKey(caller: Caller, billingKeyId: string): Requirement {
  return {
    holds: (sql) =>
      sql`exists (select 1 from public.billing_keys where id = ${billingKeyId}::uuid and user_id = ${caller.userId})`,
    otherwise: () => new AppError("not_found", "Billing key not found"),
  };
}

/** The payment's owner, or an admin, may act on it. */
export function accessiblePayment(caller: Caller, paymentId: string): Requirement {
  return {
    holds: (sql) =>
      sql`exists (select 1 from public.payments where id = ${paymentId} and (user_id = ${caller.userId} or ${caller.isAdmin}))`,
    otherwise: () => new AppError("not_found", "Payment not found"),
  };
}

/** The payment's owner, or an admin, may act on it (a statement of its own; see accessiblePayment). */
export async function requireAccessiblePayment(sql: Sql, caller: Caller, paymentId: string): Promise<void> {
  const [payment] = await sql`
    select 1 from public.payments where id = ${paymentId} and (user_id = ${caller.userId} or ${caller.isAdmin})`;
  if (!payment) throw new AppError("not_found", "Payment not found");
}
