/** The `cancel` function's contract: POST { paymentId, amount?, taxFreeAmount?, reason, refundAccount? }. */
import { z } from "../infra/deps-client.ts";
import { bankCodes } from "../portone/banks.ts";
import type { ErrorCode } from "../infra/errors.ts";
import {
  idempotencyErrors,
  paymentIdSchema,
  portoneErrors,
  userAuthErrors,
  wrapperErrors,
} from "./common.ts";

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
  refundAccount: z.unknown().transform((raw, ctx) => {
    // checked while parsing (before anything hashes or stores it), refused with its own documented code
    const parsed = RefundAccount.safeParse(raw);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    ctx.addIssue({
      code: "custom",
      message: issue?.message ?? "invalid",
      path: issue?.path ?? [],
      params: { errorCode: "invalid_refund_account" },
    });
    return z.NEVER;
  }).optional(),
});
export type CancelRequest = z.infer<typeof CancelRequest>;

/**
 * The request as callers should write it. A malformed `refundAccount` is `invalid_refund_account` while
 * parsing, for any payment; whether one is needed (`refund_account_required`) is decided once `cancel`
 * knows the payment is a virtual account. Clients and the description see its plain shape.
 */
export const CancelRequestWithRefundAccount = CancelRequest.extend({
  refundAccount: RefundAccount.optional(),
});

export const CancelResponse = z.strictObject({
  paymentId: z.string(),
  /** The payment's status after the cancellation. */
  status: z.string(),
  cancellation: z.strictObject({ id: z.string(), amount: z.number().int(), status: z.string() }),
  cancelledAmount: z.number().int(),
  cancellableAmount: z.number().int(),
});
export type CancelResponse = z.infer<typeof CancelResponse>;

export const cancelErrors = [
  ...wrapperErrors,
  ...userAuthErrors,
  ...idempotencyErrors,
  ...portoneErrors,
  "forbidden",
  "not_found",
  "refund_account_required",
  "invalid_refund_account",
  "cancel_amount_exceeds_cancellable",
  "payment_not_cancellable",
  "cancel_in_progress",
  "payment_out_of_sync",
] as const satisfies readonly ErrorCode[];
