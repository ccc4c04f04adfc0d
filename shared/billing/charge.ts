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
import { openBillingKey, syncBillingKey } from "./keys.ts";
import { asRefusal } from "../payments/refusals.ts";
import type { Sql } from "../infra/db.ts";

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
 * What a charge reads before it reserves: the saved card's sealed value (to open it here: the data keys never
 * reach the database) and the order's open browser attempts (to re-fetch them at PortOne first). Read-only
 * and limited to the caller's own rows, so it may travel beside the Idempotency-Key claim.
 */
export interface ChargeLook {
  /** Null when the key is not the caller's (the reservation then refuses it). */
  sealed_billing_key: string | null;
  browser_attempts: string[] | null;
}

export function lookBeforeCharge(
  caller: Caller,
  billingKeyId: string,
  orderId: string,
): (sql: Sql) => Promise<ChargeLook> {
  return async (sql) => {
    const [look] = await sql<ChargeLook[]>`
      select
        (select k.billing_key from public.billing_keys k
         where k.id = ${billingKeyId}::uuid and k.user_id = ${caller.userId}) as sealed_billing_key,
        (select array_agg(p.id order by p.created_at) from public.payments p
         where p.order_id = ${orderId}::uuid and p.user_id = ${caller.userId} and p.billing_key_id is null
           and p.status in ('READY', 'PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED')) as browser_attempts`;
    return look!;
  };
}

interface ReservationRow {
  outcome: "reserved" | "settled" | "key_changed";
  payment_id: string;
  taken_over_from_window: boolean | null;
  order_name: string | null;
  total_amount: number | null;
  tax_free_amount: number | null;
  currency: string | null;
}

/** The key opened for a charge, or why it does not open (raised by the reservation at its place). */
async function openForCharge(
  deps: AppDeps,
  caller: Caller,
  sealed: string | null,
): Promise<{ plain: string | null; resealed: string | null; refusal: AppError | null }> {
  if (sealed === null) return { plain: null, resealed: null, refusal: null };
  try {
    return { ...await openBillingKey(deps, { user_id: caller.userId, billing_key: sealed }), refusal: null };
  } catch (error) {
    if (error instanceof AppError) return { plain: null, resealed: null, refusal: error };
    throw error;
  }
}

/**
 * Finds or creates the attempt under the order's row lock, in one call of private.reserve_billing_attempt
 * (migration 20261201170100). An open (READY) attempt of this order with this key is reused, so a request
 * retried after an outage charges the same paymentId with the same PortOne Idempotency-Key. An attempt
 * that FAILED is never reused: its PortOne key would replay the decline.
 *
 * One paymentId per order across both ways to pay: an open attempt `prepare` handed to the payment window is
 * taken over and charged under its own paymentId. PortOne holds at most one payment per paymentId, so if the
 * customer pays in a window that is still open, only one of the two can succeed; the other is refused.
 *
 * The order's open browser attempts (from the look) are re-fetched at PortOne first, so one the customer
 * already paid (or left pending, or holding an open virtual account) before our confirm or the webhook
 * arrived is on record when the reservation looks at the order: the order is then paid (409
 * order_not_payable) or the attempt blocks (409 payment_in_progress) before PortOne is asked to charge. A
 * window paying at the same moment is caught by the shared paymentId.
 *
 * The key is opened before the call; one that does not open (a data key dropped too early, a tampered row)
 * is refused by the reservation where the charge would need it — after every other refusal, and before
 * anything is written.
 */
async function reserveBillingAttempt(
  deps: AppDeps,
  caller: Caller,
  billingKeyId: string,
  orderId: string,
  requestKey: string,
  look: ChargeLook,
): Promise<Reservation> {
  // a call still running at PortOne is bounded by our timeout; a READY attempt of another key younger than
  // this may be charging right now
  const inFlightSeconds = Math.ceil(deps.config.portone.timeoutMs / 1000) * 2 + 30;
  for (const paymentId of look.browser_attempts ?? []) await syncPayment(deps, paymentId, "billing");
  let sealed = look.sealed_billing_key;
  for (let pass = 1;; pass++) {
    const key = await openForCharge(deps, caller, sealed);
    let row: ReservationRow | undefined;
    try {
      [row] = await deps.sql<ReservationRow[]>`
        select outcome, payment_id, taken_over_from_window, order_name, total_amount, tax_free_amount, currency
        from private.reserve_billing_attempt(${caller.userId}, ${billingKeyId}, ${orderId}, ${requestKey},
                                             ${deps.config.portone.storeId}, ${deps.config.portone.billingChannelKey},
                                             ${inFlightSeconds}, ${newPaymentId()}, ${sealed},
                                             ${key.refusal?.message ?? null}, ${key.resealed})`;
    } catch (error) {
      if (key.refusal && (error as { code?: unknown })?.code === "PT005") throw key.refusal;
      throw asRefusal(error);
    }
    if (!row) throw new Error("reserve_billing_attempt returned no row");
    if (row.outcome === "settled") return { settled: true, paymentId: row.payment_id };
    if (row.outcome === "key_changed") {
      // re-sealed (or registered) meanwhile by another request: read it again
      if (pass >= 3) throw new Error("the saved card kept changing while it was being charged");
      sealed = (await lookBeforeCharge(caller, billingKeyId, orderId)(deps.sql)).sealed_billing_key;
      continue;
    }
    return {
      settled: false,
      takenOverFromWindow: row.taken_over_from_window!,
      billingKey: key.plain!,
      orderName: row.order_name!,
      paymentId: row.payment_id,
      totalAmount: row.total_amount!,
      taxFreeAmount: row.tax_free_amount!,
      currency: row.currency!,
    };
  }
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

export async function payWithSavedBillingKey(
  deps: AppDeps,
  caller: Caller,
  billingKeyId: string,
  input: PayWithBillingKeyRequest,
  idempotencyKey: string,
  look: ChargeLook,
): Promise<BillingPaymentResponse> {
  // which request made an attempt, kept in its audit events: a retry of it finds it again
  const requestKey = await sha256Hex(`billing-pay:${caller.userId}:${billingKeyId}:${idempotencyKey}`);
  const attempt = await reserveBillingAttempt(deps, caller, billingKeyId, input.orderId, requestKey, look);
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
