/**
 * Charging an order with a saved card: one attempt per order and Idempotency-Key, reserved before PortOne is
 * called, charged with a PortOne Idempotency-Key derived from the attempt, and settled by the shared sync.
 */
import { newPaymentId, sha256Hex } from "../infra/crypto.ts";
import type { BillingPaymentResponse, PayWithBillingKeyRequest } from "../contract/billing-key.ts";
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import { log } from "../infra/log.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { syncPayment } from "../payments/sync.ts";
import { revealBillingKey, syncBillingKey } from "./keys.ts";

// ---------------------------------------------------------------------------------------------------
// Requests and replies

// ---------------------------------------------------------------------------------------------------
// Pay

/** An attempt this request already settled at PortOne (an earlier try whose reply was lost), or one to charge. */
type Reservation =
  | { readonly settled: true; readonly paymentId: string }
  | ({ readonly settled: false } & BillingAttempt);

interface BillingAttempt {
  paymentId: string;
  /** The attempt was prepare's, still open in a payment window: the window may have paid it first. */
  takenOverFromWindow: boolean;
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
 * Finds or creates the attempt under the order's row lock. An open (READY) attempt of this order with this
 * key is reused, so a request retried after an outage charges the same paymentId with the same PortOne
 * Idempotency-Key. An attempt that FAILED is never reused: its PortOne key would replay the decline.
 *
 * One paymentId per order across both ways to pay: an open attempt `prepare` handed to the payment window is
 * taken over and charged under its own paymentId. PortOne holds at most one payment per paymentId, so if the
 * customer pays in a window that is still open, only one of the two can succeed; the other is refused.
 */
async function reserveBillingAttempt(
  deps: AppDeps,
  caller: Caller,
  billingKeyId: string,
  orderId: string,
  requestKey: string,
): Promise<Reservation> {
  // a call still running at PortOne is bounded by our timeout; a READY attempt of another key younger than
  // this may be charging right now
  const inFlightSeconds = Math.ceil(deps.config.portone.timeoutMs / 1000) * 2 + 30;
  return await deps.sql.begin(async (tx) => {
    const [key] = await tx<
      {
        id: string;
        user_id: string;
        billing_key: string;
        status: string;
        store_id: string;
        channel_key: string | null;
      }[]
    >`
      select id, user_id, billing_key, status, store_id, channel_key from public.billing_keys
      where id = ${billingKeyId} and user_id = ${caller.userId}`;
    // someone else's key and a missing one look the same
    if (!key) throw new AppError("not_found", "Billing key not found");
    if (key.status !== "ISSUED" || key.store_id !== deps.config.portone.storeId) {
      throw new AppError("billing_key_not_active", "The billing key is deleted");
    }
    // charges report the key's channel; one the store no longer configures would pay nothing
    const channelKey = deps.config.portone.billingChannelKey;
    if (key.channel_key !== null && key.channel_key !== channelKey) {
      throw new AppError("billing_key_not_active", "The billing key was issued through another channel");
    }

    const [order] = await tx<{ status: string; order_name: string }[]>`
      select status, order_name from public.orders
      where id = ${orderId} and user_id = ${caller.userId}
      for update`;
    if (!order) throw new AppError("not_found", "Order not found");
    // an earlier try of this very request (same Idempotency-Key) whose reply was lost after PortOne settled
    // its attempt — a webhook may have marked the order paid since: answer from that attempt, charge nothing
    const [own] = await tx<{ id: string; status: string }[]>`
      select p.id, p.status from public.payments p
      where p.order_id = ${orderId}
        and exists (select from public.payment_events e
                    where e.payment_id = p.id and e.source = 'billing' and e.detail ->> 'requestKey' = ${requestKey})
      order by p.created_at desc limit 1`;
    if (own && own.status !== "READY") return { settled: true, paymentId: own.id };
    if (order.status !== "pending") throw new AppError("order_not_payable", `Order is ${order.status}`);

    const live = await tx<
      {
        id: string;
        status: string;
        billing_key_id: string | null;
        billing_channel_key: string | null;
        young: boolean;
        virtual_account_expires_at: Date | null;
      }[]
    >`
      select id, status, billing_key_id, billing_channel_key, virtual_account_expires_at,
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
    const reusable = live.find((p) =>
      p.status === "READY" && (p.billing_key_id === billingKeyId || p.billing_key_id === null)
    );
    // the channel the charge must report is recorded with the attempt (beside the window's, for a taken-over one)
    const [row] = reusable
      ? await tx<{ id: string; total_amount: number; tax_free_amount: number; currency: string }[]>`
        update public.payments set billing_channel_key = ${channelKey} where id = ${reusable.id}
        returning id, total_amount, tax_free_amount, currency`
      : await tx<{ id: string; total_amount: number; tax_free_amount: number; currency: string }[]>`
        insert into public.payments
          (id, order_id, user_id, store_id, billing_channel_key, total_amount, tax_free_amount, currency,
           billing_key_id)
        select ${newPaymentId()}, o.id, o.user_id, ${deps.config.portone.storeId}, ${channelKey}, o.total_amount,
               o.tax_free_amount, o.currency, ${billingKeyId}
        from public.orders o where o.id = ${orderId}
        returning id, total_amount, tax_free_amount, currency`;
    if (reusable && reusable.billing_key_id === null && reusable.billing_channel_key === null) {
      await tx`
        insert into public.payment_events (payment_id, source, kind, from_status, to_status, detail)
        values (${row!.id}, 'billing', 'taken_over_by_saved_card', 'READY', 'READY',
                ${tx.json({ orderId, billingKeyId, requestKey } as never)})`;
    }
    if (!reusable) {
      await tx`
        insert into public.payment_events (payment_id, source, kind, to_status, detail)
        values (${row!.id}, 'billing', 'created', 'READY',
                ${tx.json({ orderId, billingKeyId, requestKey } as never)})`;
    }
    return {
      settled: false,
      takenOverFromWindow: reusable !== undefined && reusable.billing_key_id === null,
      billingKey: await revealBillingKey(deps, tx, key),
      orderName: order.order_name,
      paymentId: row!.id,
      totalAmount: row!.total_amount,
      taxFreeAmount: row!.tax_free_amount,
      currency: row!.currency,
    };
  });
}

/** The answer for an attempt an earlier try of the same request already settled at PortOne (re-synced). */
async function answerSettledAttempt(deps: AppDeps, paymentId: string): Promise<BillingPaymentResponse> {
  const result = await syncPayment(deps, paymentId, "billing");
  if (result.outcome === "not_ours") throw new AppError("not_found", "Payment not found");
  const payment = result.payment;
  if (payment.status === "FAILED") {
    throw new AppError("payment_declined", "The card issuer declined the payment", {
      details: { paymentId, status: payment.status, pgCode: null, pgMessage: null },
    });
  }
  if (payment.mismatchReason !== null) {
    throw new AppError("payment_mismatch", "The payment does not match the order and was not accepted", {
      details: { paymentId, status: payment.status },
    });
  }
  return { paymentId: payment.paymentId, status: payment.status, order: payment.order };
}

/**
 * The order's open browser attempts are re-fetched at PortOne first, so one the customer already paid (or
 * left pending, or holding an open virtual account) before our confirm or the webhook arrived is on record
 * when the reservation looks at the order: the order is then paid (409 order_not_payable) or the attempt
 * blocks (409 payment_in_progress) before PortOne is asked to charge. A window paying at the same moment is
 * caught by the shared paymentId (see reserveBillingAttempt).
 */
async function refreshBrowserAttempts(deps: AppDeps, caller: Caller, orderId: string): Promise<void> {
  const open = await deps.sql<{ id: string }[]>`
    select id from public.payments
    where order_id = ${orderId} and user_id = ${caller.userId} and billing_key_id is null
      and status in ('READY', 'PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED')
    order by created_at`;
  for (const payment of open) await syncPayment(deps, payment.id, "billing");
}

export async function payWithSavedBillingKey(
  deps: AppDeps,
  caller: Caller,
  billingKeyId: string,
  input: PayWithBillingKeyRequest,
  idempotencyKey: string,
): Promise<BillingPaymentResponse> {
  await refreshBrowserAttempts(deps, caller, input.orderId);
  // which request made an attempt, kept in its audit events: a retry of it finds it again
  const requestKey = await sha256Hex(`billing-pay:${caller.userId}:${billingKeyId}:${idempotencyKey}`);
  const attempt = await reserveBillingAttempt(deps, caller, billingKeyId, input.orderId, requestKey);
  if (attempt.settled) return await answerSettledAttempt(deps, attempt.paymentId);

  let declined: PortOneRefusal | null = null;
  let alreadyPaid = false;
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
        // the PG declined: PortOne holds a FAILED payment, which the sync below records
        declined = error;
        break;
      case "ALREADY_PAID":
        // an earlier try of this very attempt went through, or the customer paid this paymentId in the payment
        // window first; the sync below picks it up either way
        alreadyPaid = true;
        break;
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

  const result = await syncPayment(deps, attempt.paymentId, "billing");
  if (result.outcome === "not_ours") throw new AppError("not_found", "Payment not found");
  const payment = result.payment;
  if (declined) {
    log("info", "billing_payment_declined", {
      paymentId: attempt.paymentId,
      pgCode: declined.pgCode ?? null,
    });
    throw new AppError("payment_declined", "The card issuer declined the payment", {
      details: {
        paymentId: attempt.paymentId,
        status: payment.status,
        pgCode: declined.pgCode ?? null,
        pgMessage: declined.pgMessage ?? null,
      },
    });
  }
  if (alreadyPaid && attempt.takenOverFromWindow) {
    // PortOne refused to charge this paymentId again: the payment window (or an earlier try whose answer was
    // lost) paid it; either way the order is paid once and this request charged nothing
    throw new AppError("order_not_payable", `The order was already paid (payment ${payment.paymentId})`, {
      details: { paymentId: payment.paymentId, status: payment.status },
    });
  }
  if (payment.mismatchReason !== null) {
    throw new AppError("payment_mismatch", "The payment does not match the order and was not accepted", {
      details: { paymentId: payment.paymentId, status: payment.status },
    });
  }
  return { paymentId: payment.paymentId, status: payment.status, order: payment.order };
}
