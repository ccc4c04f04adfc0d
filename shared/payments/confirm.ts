/**
 * `confirm`: after the payment window closes, the browser asks us to confirm; we never trust what it says
 * about the payment and run the shared sync (re-fetch → verify → apply) instead.
 */
import { z } from "../infra/deps.ts";
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { defineFunction, type EdgeFunction, json, readJson } from "../infra/http.ts";
import { type PaymentView, syncPayment } from "./sync.ts";

export const paymentIdSchema = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, "must be a paymentId from prepare");

export const ConfirmRequest = z.strictObject({ paymentId: paymentIdSchema });
export type ConfirmRequest = z.infer<typeof ConfirmRequest>;

export interface ConfirmResponse {
  readonly paymentId: string;
  readonly status: PaymentView["status"];
  readonly order: PaymentView["order"];
  readonly virtualAccount?: PaymentView["virtualAccount"];
}

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
