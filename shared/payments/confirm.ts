/**
 * `confirm`: after the payment window closes, the browser asks us to confirm; we never trust what it says
 * about the payment and run the shared sync (re-fetch → verify → apply) instead.
 */
import { ConfirmRequest, type ConfirmResponse } from "../contract/confirm.ts";
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { defineFunction, type EdgeFunction, json, readJson } from "../infra/http.ts";
import { syncPayment } from "./sync.ts";

export async function confirmPayment(
  deps: AppDeps,
  caller: Caller,
  input: ConfirmRequest,
): Promise<ConfirmResponse> {
  const [owned] = await deps.sql`
    select 1 from public.payments where id = ${input.paymentId} and user_id = ${caller.userId}`;
  if (!owned) throw new AppError("not_found", "Payment not found");

  const result = await syncPayment(
    deps,
    input.paymentId,
    "confirm",
  );
  if (result.outcome === "not_ours") throw new AppError("not_found", "Payment not found");
  const payment = result.payment;
  if (payment.mismatchReason !== null) {
    throw new AppError("payment_mismatch", "The payment does not match the order and was not accepted", {
      details: { paymentId: payment.paymentId, status: payment.status },
    });
  }
  return {
    paymentId: payment.paymentId,
    status: payment.status,
    order: payment.order,
    ...(payment.virtualAccount ? { virtualAccount: payment.virtualAccount } : {}),
  };
}

/** The `confirm` function: POST { paymentId }. */
export function confirmHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "confirm",
    methods: ["POST"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ request, caller }) =>
      json(await confirmPayment(deps, caller, await readJson(request, ConfirmRequest))),
  });
}
