/** The `confirm` function's contract: POST { paymentId }. */
import { z } from "../infra/deps-client.ts";
import type { PaymentView } from "../payments/sync.ts";
import { paymentIdSchema } from "./common.ts";

export const ConfirmRequest = z.strictObject({ paymentId: paymentIdSchema });
export type ConfirmRequest = z.infer<typeof ConfirmRequest>;

export interface ConfirmResponse {
  readonly paymentId: string;
  readonly status: PaymentView["status"];
  readonly order: PaymentView["order"];
  readonly virtualAccount?: PaymentView["virtualAccount"];
}
