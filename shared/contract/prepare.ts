/** The `prepare` function's contract: POST { orderId, payMethod? }, optional Idempotency-Key. */
import { z } from "../infra/deps-client.ts";
import { payMethods } from "./common.ts";

export const PrepareRequest = z.strictObject({
  orderId: z.uuid(),
  payMethod: z.enum(payMethods).optional(),
});
export type PrepareRequest = z.infer<typeof PrepareRequest>;

export interface PrepareResponse {
  readonly paymentId: string;
  readonly storeId: string;
  readonly channelKey: string;
  readonly orderName: string;
  readonly totalAmount: number;
  readonly taxFreeAmount: number;
  readonly currency: string;
  readonly customer: { readonly customerId: string };
}
