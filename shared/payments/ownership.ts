/**
 * "Is this the caller's?" checks run before anything is written for a request (the Idempotency-Key claim
 * included), so a request about someone else's order or payment leaves no row anywhere. Someone else's
 * resource and a missing one both answer 404: a 403 would confirm that it exists.
 */
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import type { Sql } from "../infra/db.ts";

export async function requireOwnOrder(sql: Sql, caller: Caller, orderId: string): Promise<void> {
  const [order] = await sql`select 1 from public.orders where id = ${orderId} and user_id = ${caller.userId}`;
  if (!order) throw new AppError("not_found", "Order not found");
}

/** The payment's owner, or an admin, may act on it. */
export async function requireAccessiblePayment(sql: Sql, caller: Caller, paymentId: string): Promise<void> {
  const [payment] = await sql`
    select 1 from public.payments where id = ${paymentId} and (user_id = ${caller.userId} or ${caller.isAdmin})`;
  if (!payment) throw new AppError("not_found", "Payment not found");
}
