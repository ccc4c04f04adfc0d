/** The `cancel` function's contract: POST { paymentId, amount?, taxFreeAmount?, reason, refundAccount? }. */
import { z } from "../infra/deps-client.ts";
import { bankCodes } from "../portone/banks.ts";
import { paymentIdSchema } from "./common.ts";

const money = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

export const RefundAccount = z.strictObject({
  bank: z.enum(bankCodes),
  number: z.string().regex(/^[0-9]{6,20}$/, "must be 6 to 20 digits"),
  holderName: z.string().trim().min(1).max(50),
  holderPhoneNumber: z.string().regex(/^[0-9]{9,11}$/, "must be 9 to 11 digits").optional(),
});
export type RefundAccount = z.infer<typeof RefundAccount>;

export const CancelRequest = z.strictObject({
  paymentId: paymentIdSchema,
  amount: money.optional(),
  taxFreeAmount: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  reason: z.string().trim().min(1).max(200),
  refundAccount: z.unknown().optional(),
});
export type CancelRequest = z.infer<typeof CancelRequest>;

export interface CancelResponse {
  readonly paymentId: string;
  readonly status: string;
  readonly cancellation: { readonly id: string; readonly amount: number; readonly status: string };
  readonly cancelledAmount: number;
  readonly cancellableAmount: number;
}
