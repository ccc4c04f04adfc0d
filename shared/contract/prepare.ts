/** The `prepare` function's contract: POST { orderId, payMethod? }, optional Idempotency-Key. */
import { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import { idempotencyErrors, payMethods, portoneErrors, userAuthErrors, wrapperErrors } from "./common.ts";

export const PrepareRequest = z.strictObject({
  orderId: z.uuid(),
  payMethod: z.enum(payMethods).optional(),
});
export type PrepareRequest = z.infer<typeof PrepareRequest>;

/** What the browser SDK's `PortOne.requestPayment` needs (spread it, add `payMethod`). */
export const PrepareResponse = z.strictObject({
  paymentId: z.string(),
  storeId: z.string(),
  channelKey: z.string(),
  orderName: z.string(),
  totalAmount: z.number().int(),
  taxFreeAmount: z.number().int(),
  currency: z.string(),
  customer: z.strictObject({ customerId: z.string() }),
});
export type PrepareResponse = z.infer<typeof PrepareResponse>;

export const prepareErrors = [
  ...wrapperErrors,
  ...userAuthErrors,
  ...idempotencyErrors,
  ...portoneErrors,
  "not_found",
  "order_not_payable",
  "payment_in_progress",
] as const satisfies readonly ErrorCode[];
