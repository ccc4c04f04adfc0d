/**
 * Charging an order with a saved card: one attempt per order and Idempotency-Key, reserved before PortOne is
 * called, charged with a PortOne Idempotency-Key derived from the attempt, and settled by the shared sync.
 */
import { sha256Hex } from "../infra/crypto.ts";
import { z } from "../infra/deps.ts";
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import { log } from "../infra/log.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { type PaymentView, syncPayment } from "../payments/sync.ts";
import { syncBillingKey } from "./keys.ts";

// ---------------------------------------------------------------------------------------------------
// Requests and replies

export const PayWithBillingKeyRequest = z.strictObject({ orderId: z.uuid() });
export type PayWithBillingKeyRequest = z.infer<typeof PayWithBillingKeyRequest>;

export interface BillingPaymentResponse {
  readonly paymentId: string;
  readonly status: PaymentView["status"];
  readonly order: PaymentView["order"];
}

// ---------------------------------------------------------------------------------------------------
// Pay

interface BillingAttempt {
  paymentId: string;
  /** This request's attempt was already charged or declined (an earlier try whose reply was lost). */
  settled: boolean;
  billingKey: string;
  orderName: string;
  totalAmount: number;
  taxFreeAmount: number;
  currency: string;
}

/**
 * The Idempotency-Key sent to PortOne, derived from the attempt's paymentId (which is persisted before the
 * call): any retry of the same attempt sends the same key, so PortOne replays instead of charging again.
 */
export function portoneIdempotencyKeyFor(paymentId: string): string {
  return `billing-pay-${paymentId}`;
}

/**
 * The paymentId of the attempt one client request makes, derived from its Idempotency-Key (128 bits of a
 * SHA-256 that includes the client's key, so no more guessable than a random one). A retry of the request
 * finds its own attempt even when the first try's reply was lost after the charge went through and a
 * webhook marked the order paid meanwhile: it answers with that payment instead of 409 order_not_payable.
 */
export async function billingAttemptIdFor(
  userId: string,
  billingKeyId: string,
  orderId: string,
  idempotencyKey: string,
): Promise<string> {
  const digest = await sha256Hex(
    JSON.stringify(["billing-pay", userId, billingKeyId, orderId, idempotencyKey]),
  );
  return `pay_${digest.slice(0, 32)}`;
}

/**
 * Finds or creates the attempt under the order's row lock. This request's own attempt (see
 * billingAttemptIdFor) is answered from, whatever happened to it; otherwise an open (READY) attempt of
 * this order with this billing key is reused, so a request retried after an outage charges the same
 * paymentId with the same PortOne Idempotency-Key. An attempt that FAILED is never reused for a new
 * request: its PortOne key would replay the decline.
 */
async function reserveBillingAttempt(
  deps: AppDeps,
  caller: Caller,
  billingKeyId: string,
  orderId: string,
  attemptId: string,
): Promise<BillingAttempt> {
  // a call still running at PortOne is bounded by our timeout; a READY attempt of another key younger than
  // this may be charging right now
  const inFlightSeconds = Math.ceil(deps.config.portone.timeoutMs / 1000) * 2 + 30;
  return await deps.sql.begin(async (tx) => {
    const [key] = await tx<{ billing_key: string; status: string; store_id: string }[]>`
      select billing_key, status, store_id from public.billing_keys
      where id = ${billingKeyId} and user_id = ${caller.userId}`;
    // someone else's key and a missing one look the same
    if (!key) throw new AppError("not_found", "Billing key not found");
    if (key.status !== "ISSUED" || key.store_id !== deps.config.portone.storeId) {
      throw new AppError("billing_key_not_active", "The billing key is deleted");
    }

    const [order] = await tx<{ status: string; order_name: string }[]>`
      select status, order_name from public.orders
      where id = ${orderId} and user_id = ${caller.userId}
      for update`;
    if (!order) throw new AppError("not_found", "Order not found");
    const [own] = await tx<
      { status: string; total_amount: number; tax_free_amount: number; currency: string }[]
    >`
      select status, total_amount, tax_free_amount, currency from public.payments
      where id = ${attemptId} and order_id = ${orderId}`;
    if (own && own.status !== "READY") {
      return {
        paymentId: attemptId,
        settled: true,
        billingKey: key.billing_key,
        orderName: order.order_name,
        totalAmount: own.total_amount,
        taxFreeAmount: own.tax_free_amount,
        currency: own.currency,
      };
    }
    if (order.status !== "pending") throw new AppError("order_not_payable", `Order is ${order.status}`);

    const live = await tx<
      {
        id: string;
        status: string;
        billing_key_id: string | null;
        young: boolean;
        virtual_account_expires_at: Date | null;
      }[]
    >`
      select id, status, billing_key_id, virtual_account_expires_at,
             created_at > now() - make_interval(secs => ${inFlightSeconds}) as young
      from public.payments
      where order_id = ${orderId} and mismatch_reason is null
        and status in ('READY', 'PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED')
      order by created_at desc`;
    const blocking = live.find((p) =>
      p.status === "PAY_PENDING" ||
      (p.status === "VIRTUAL_ACCOUNT_ISSUED" &&
        (p.virtual_account_expires_at === null || p.virtual_account_expires_at.getTime() > Date.now())) ||
      (p.status === "READY" && p.billing_key_id !== null && p.billing_key_id !== billingKeyId && p.young)
    );
    // a second charge while money may still arrive through the first would risk a double payment
    if (blocking) {
      throw new AppError("payment_in_progress", `Payment ${blocking.id} for this order is in progress`);
    }
    const reusable = live.find((p) => p.id === attemptId) ??
      live.find((p) => p.status === "READY" && p.billing_key_id === billingKeyId);
    const [row] = reusable
      ? await tx<{ id: string; total_amount: number; tax_free_amount: number; currency: string }[]>`
        select id, total_amount, tax_free_amount, currency from public.payments where id = ${reusable.id}`
      : await tx<{ id: string; total_amount: number; tax_free_amount: number; currency: string }[]>`
        insert into public.payments
          (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency, billing_key_id)
        select ${attemptId}, o.id, o.user_id, ${deps.config.portone.storeId}, o.total_amount,
               o.tax_free_amount, o.currency, ${billingKeyId}
        from public.orders o where o.id = ${orderId}
        returning id, total_amount, tax_free_amount, currency`;
    if (!reusable) {
      await tx`
        insert into public.payment_events (payment_id, source, kind, to_status, detail)
        values (${row!.id}, 'billing', 'created', 'READY', ${tx.json({ orderId, billingKeyId } as never)})`;
    }
    return {
      settled: false,
      billingKey: key.billing_key,
      orderName: order.order_name,
      paymentId: row!.id,
      totalAmount: row!.total_amount,
      taxFreeAmount: row!.tax_free_amount,
      currency: row!.currency,
    };
  });
}

/** Charges the attempt at PortOne; a PG decline is returned (PortOne holds a FAILED payment), not thrown. */
async function chargeAttempt(
  deps: AppDeps,
  caller: Caller,
  attempt: BillingAttempt,
): Promise<PortOneRefusal | null> {
  try {
    await deps.portone.payWithBillingKey({
      paymentId: attempt.paymentId,
      billingKey: attempt.billingKey,
      orderName: attempt.orderName,
      amount: { total: attempt.totalAmount, taxFree: attempt.taxFreeAmount },
      currency: attempt.currency as never,
      customerId: caller.userId,
      idempotencyKey: portoneIdempotencyKeyFor(attempt.paymentId),
    });
  } catch (error) {
    if (!(error instanceof PortOneRefusal)) throw error;
    switch (error.type) {
      case "PG_PROVIDER":
        // the PG declined: PortOne holds a FAILED payment, which the sync records
        return error;
      case "ALREADY_PAID":
        // an earlier try of this very attempt went through; the sync picks it up
        return null;
      case "BILLING_KEY_ALREADY_DELETED":
      case "BILLING_KEY_NOT_FOUND":
        await syncBillingKey(deps, attempt.billingKey);
        throw new AppError("billing_key_not_active", "The billing key is no longer usable");
      case "IDEMPOTENCY_OUTSTANDING_REQUEST":
        throw new AppError("request_in_progress", "A charge for this order is in progress");
      default:
        throw new AppError("portone_error", "PortOne refused the billing key payment", { cause: error });
    }
  }
  return null;
}

export async function payWithSavedBillingKey(
  deps: AppDeps,
  caller: Caller,
  billingKeyId: string,
  input: PayWithBillingKeyRequest,
  idempotencyKey: string,
): Promise<BillingPaymentResponse> {
  const attemptId = await billingAttemptIdFor(caller.userId, billingKeyId, input.orderId, idempotencyKey);
  const attempt = await reserveBillingAttempt(deps, caller, billingKeyId, input.orderId, attemptId);

  // an attempt already settled by an earlier try of this request is answered from, never charged again
  const declined = attempt.settled ? null : await chargeAttempt(deps, caller, attempt);

  const result = await syncPayment(deps, attempt.paymentId, "billing");
  if (result.outcome === "not_ours") throw new AppError("not_found", "Payment not found");
  const payment = result.payment;
  if (declined || (attempt.settled && payment.status === "FAILED")) {
    log("info", "billing_payment_declined", {
      paymentId: attempt.paymentId,
      pgCode: declined?.pgCode ?? null,
    });
    throw new AppError("payment_declined", "The card issuer declined the payment", {
      details: {
        paymentId: attempt.paymentId,
        status: payment.status,
        pgCode: declined?.pgCode ?? null,
        pgMessage: declined?.pgMessage ?? null,
      },
    });
  }
  if (payment.mismatchReason !== null) {
    throw new AppError("payment_mismatch", "The payment does not match the order and was not accepted", {
      details: { paymentId: payment.paymentId, status: payment.status },
    });
  }
  return { paymentId: payment.paymentId, status: payment.status, order: payment.order };
}
