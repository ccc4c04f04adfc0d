/** The `confirm` function's contract: POST { paymentId }. */
import { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import {
  OrderSummary,
  paymentIdSchema,
  PaymentStatus,
  portoneErrors,
  userAuthErrors,
  VirtualAccount,
  wrapperErrors,
} from "./common.ts";

export const ConfirmRequest = z.strictObject({ paymentId: paymentIdSchema });
export type ConfirmRequest = z.infer<typeof ConfirmRequest>;

export const ConfirmResponse = z.strictObject({
  paymentId: z.string(),
  status: PaymentStatus,
  order: OrderSummary,
  /** Only for an issued virtual account: where the customer transfers the money. */
  virtualAccount: VirtualAccount.optional(),
});
export type ConfirmResponse = z.infer<typeof ConfirmResponse>;

export const confirmErrors = [
  ...wrapperErrors,
  ...userAuthErrors,
  ...portoneErrors,
  "not_found",
  "payment_mismatch",
] as const satisfies readonly ErrorCode[];
