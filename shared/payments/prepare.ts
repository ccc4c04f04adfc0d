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
import { idempotencyKeyFrom, ReplyWithWrite, withIdempotency } from "../infra/idempotency.ts";
import { ownOrder } from "./ownership.ts";
import { refusing } from "./refusals.ts";
import type { Row, SqlRow } from "../infra/rows.ts";

/** A payment attempt with its order's name. */
type Attempt =
  & Pick<
    SqlRow<"payments", "pre_registered_at">,
    "id" | "total_amount" | "tax_free_amount" | "currency" | "pre_registered_at"
  >
  & Pick<Row<"orders">, "order_name">;

/**
 * Finds the order's live attempt or creates one, in one call of private.reserve_payment_attempt (migration
 * 20261201170100): under the order's row lock, so racing prepares agree; refusing someone else's order
 * (404), an order that is not pending, and a second attempt while money may still arrive through the first.
 */
async function reserveAttempt(
  deps: AppDeps,
  caller: Caller,
  orderId: string,
  channelKey: string,
): Promise<Attempt> {
  const [attempt] = await refusing(deps.sql<Attempt[]>`
    select id, order_name, total_amount, tax_free_amount, currency, pre_registered_at
    from private.reserve_payment_attempt(${caller.userId}, ${orderId}, ${channelKey},
                                         ${deps.config.portone.storeId}, ${newPaymentId()})`);
  if (!attempt) throw new Error("reserve_payment_attempt returned no row");
  return attempt;
}

/**
 * The reply, and the write that records the pre-registration when this request made it: the caller sends
 * it beside its own last write (one round trip for both, see ReplyWithWrite).
 */
export async function preparePayment(
  deps: AppDeps,
  caller: Caller,
  input: PrepareRequest,
): Promise<ReplyWithWrite | PrepareResponse> {
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
  }
  const response: PrepareResponse = {
    paymentId: attempt.id,
    storeId: deps.config.portone.storeId,
    channelKey,
    orderName: attempt.order_name,
    totalAmount: attempt.total_amount,
    taxFreeAmount: attempt.tax_free_amount,
    currency: attempt.currency,
    customer: { customerId: caller.userId },
  };
  if (attempt.pre_registered_at !== null) return response;
  // not awaited here: sent beside the Idempotency-Key's completion. Should it not land, the next prepare of
  // the order pre-registers again (as after a PortOne outage)
  return new ReplyWithWrite(
    response,
    deps.sql`update public.payments set pre_registered_at = now() where id = ${attempt.id}`,
  );
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
      const scope = {
        userId: caller.userId,
        route: "prepare",
        key: idempotencyKeyFrom(request),
        request: input,
        // checked before the Idempotency-Key is recorded: someone else's order writes nothing (without a key,
        // the reservation refuses it the same way)
        requires: [ownOrder(caller, input.orderId)],
      };
      return replyJson(await withIdempotency(deps.sql, scope, () => preparePayment(deps, caller, input)));
    },
  });
}
