/**
 * `prepare`: turns one of the caller's pending orders into a PortOne payment attempt and returns what the
 * browser SDK's `requestPayment` needs. The amount comes from the order, never from the client, and is
 * pre-registered at PortOne so the payment window refuses any other amount.
 */
import { channelKeyFor } from "../infra/config.ts";
import { newPaymentId } from "../infra/crypto.ts";
import { PrepareRequest, type PrepareResponse } from "../contract/prepare.ts";
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { defineFunction, type EdgeFunction, readJson, replyJson } from "../infra/http.ts";
import { idempotencyKeyFrom, withIdempotency } from "../infra/idempotency.ts";
import { requireOwnOrder } from "./ownership.ts";
import type { Row, SqlRow } from "../infra/rows.ts";

/** A payment attempt with its order's name (joined, or echoed by `returning`). */
type Attempt =
  & Pick<
    SqlRow<"payments", "pre_registered_at">,
    "id" | "total_amount" | "tax_free_amount" | "currency" | "pre_registered_at"
  >
  & Pick<Row<"orders">, "order_name">;

/**
 * Finds the order's live attempt or creates one, under the order's row lock so racing prepares agree. The
 * order is locked before any of its payments, the one lock order the sync and the billing charge follow too:
 * a re-prepare racing a webhook of the same order waits instead of deadlocking.
 */
async function reserveAttempt(
  deps: AppDeps,
  caller: Caller,
  orderId: string,
  channelKey: string,
): Promise<Attempt> {
  return await deps.sql.begin(async (tx) => {
    const [order] = await tx<Pick<Row<"orders">, "id" | "status" | "order_name">[]>`
      select id, status, order_name from public.orders
      where id = ${orderId} and user_id = ${caller.userId}
      for update`;
    // someone else's order and a missing one look the same
    if (!order) throw new AppError("not_found", "Order not found");
    if (order.status !== "pending") throw new AppError("order_not_payable", `Order is ${order.status}`);

    const live = await tx<
      (
        & Attempt
        & Pick<SqlRow<"payments", "virtual_account_expires_at">, "status" | "virtual_account_expires_at">
      )[]
    >`
      select p.id, o.order_name, p.total_amount, p.tax_free_amount, p.currency, p.pre_registered_at, p.status,
             p.virtual_account_expires_at
      from public.payments p join public.orders o on o.id = p.order_id
      where p.order_id = ${orderId} and p.mismatch_reason is null
        and p.status in ('READY', 'PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED')
      order by p.created_at desc`;
    const blocking = live.find((p) =>
      p.status === "PAY_PENDING" ||
      (p.status === "VIRTUAL_ACCOUNT_ISSUED" &&
        (p.virtual_account_expires_at === null || p.virtual_account_expires_at.getTime() > Date.now()))
    );
    // a second attempt while money may still arrive through the first would risk a double payment
    if (blocking) {
      throw new AppError("payment_in_progress", `Payment ${blocking.id} for this order is in progress`);
    }
    const ready = live.find((p) => p.status === "READY");
    if (ready) {
      await tx`update public.payments set channel_key = ${channelKey} where id = ${ready.id}`;
      return ready;
    }

    const [created] = await tx<Attempt[]>`
      insert into public.payments (id, order_id, user_id, store_id, channel_key, total_amount, tax_free_amount, currency)
      select ${newPaymentId()}, o.id, o.user_id, ${deps.config.portone.storeId}, ${channelKey}, o.total_amount,
             o.tax_free_amount, o.currency
      from public.orders o where o.id = ${orderId}
      returning id, ${order.order_name}::text as order_name, total_amount, tax_free_amount, currency, pre_registered_at`;
    await tx`
      insert into public.payment_events (payment_id, source, kind, to_status, detail)
      values (${created!.id}, 'prepare', 'created', 'READY', ${tx.json({ orderId } as never)})`;
    return created!;
  });
}

export async function preparePayment(
  deps: AppDeps,
  caller: Caller,
  input: PrepareRequest,
): Promise<PrepareResponse> {
  const channelKey = channelKeyFor(deps.config, input.payMethod);
  const attempt = await reserveAttempt(deps, caller, input.orderId, channelKey);

  // Outside the transaction: a PortOne outage leaves an attempt without pre_registered_at, which the
  // next prepare of this order picks up and pre-registers again.
  if (attempt.pre_registered_at === null) {
    try {
      await deps.portone.preRegisterPayment({
        paymentId: attempt.id,
        totalAmount: attempt.total_amount,
        taxFreeAmount: attempt.tax_free_amount,
        currency: attempt.currency as never,
      });
    } catch (error) {
      if (error instanceof PortOneRefusal && error.type === "ALREADY_PAID") {
        throw new AppError("order_not_payable", `Payment ${attempt.id} is already paid; confirm it`);
      }
      if (error instanceof PortOneRefusal) {
        throw new AppError("portone_error", "PortOne refused the pre-registration", { cause: error });
      }
      throw error;
    }
    await deps.sql`update public.payments set pre_registered_at = now() where id = ${attempt.id}`;
  }

  return {
    paymentId: attempt.id,
    storeId: deps.config.portone.storeId,
    channelKey,
    orderName: attempt.order_name,
    totalAmount: attempt.total_amount,
    taxFreeAmount: attempt.tax_free_amount,
    currency: attempt.currency,
    customer: { customerId: caller.userId },
  };
}

/** The `prepare` function: POST { orderId, payMethod? }, optional Idempotency-Key. */
export function prepareHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "prepare",
    methods: ["POST"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ request, caller }) => {
      const input = await readJson(request, PrepareRequest);
      // checked before the Idempotency-Key is recorded: someone else's order writes nothing
      await requireOwnOrder(deps.sql, caller, input.orderId);
      const scope = {
        userId: caller.userId,
        route: "prepare",
        key: idempotencyKeyFrom(request),
        request: input,
      };
      return replyJson(await withIdempotency(deps.sql, scope, () => preparePayment(deps, caller, input)));
    },
  });
}
