/**
 * `cancel`: full and partial refunds that can never pay out twice.
 *
 * 1. Reserve: one statement (private.reserve_cancellation, one transaction under the payment's row lock)
 *    checks who may cancel and how much is left, and records the cancellation as REQUESTED with the exact
 *    request we will send PortOne, including its Idempotency-Key (derived from the caller's own
 *    Idempotency-Key, so a retried request reuses it).
 * 2. Call PortOne with `currentCancellableAmount` (PortOne refuses if its balance moved) and that key.
 * 3. Settle from PortOne's answer in a second transaction, together with a fresh snapshot of the payment.
 *
 * One cancellation per payment is in flight at a time: a second one gets 409 `cancel_in_progress`. That keeps
 * `currentCancellableAmount` exact and lets a lost answer be matched to its request without guessing. An
 * unknown outcome (timeout, 5xx) keeps the reservation; the caller's retry with the same Idempotency-Key
 * repeats the identical keyed request, which PortOne performs at most once; a webhook or reconcile settles
 * it otherwise, and any sync settles it FAILED once PortOne's balance shows it can no longer succeed (see
 * the apply in sync.ts). A refused request answers its refusal again to every retry with the same key.
 */
import type { Caller } from "../infra/auth.ts";
import { pgProvidersRequiringRefundPhone } from "../portone/banks.ts";
import { CancelRequest, type CancelResponse, type RefundAccount } from "../contract/cancel.ts";
import { AppError } from "../infra/errors.ts";
import { defineFunction, type EdgeFunction, readJson, replyJson } from "../infra/http.ts";
import { sha256Hex } from "../infra/crypto.ts";
import { idempotencyKeyFrom, withIdempotency } from "../infra/idempotency.ts";
import { accessiblePayment } from "./ownership.ts";
import { asRefusal } from "./refusals.ts";
import { log } from "../infra/log.ts";
import { type PaymentCancellation, PortOneRefusal } from "../portone/gateway.ts";
import { maskDigits } from "../portone/snapshot.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { type CancellationSettlement, syncPayment } from "./sync.ts";
import type { Narrowed, Row } from "../infra/rows.ts";
import type { PaymentStatus } from "./status.ts";

/**
 * A cancellation as cancel sends it to PortOne: the columns are the generated ones, narrowed to what
 * cancel's own reservations hold. A row the sync records for a cancellation made at PortOne
 * (requester 'PORTONE', no key, no balance) always carries PortOne's id and is never sent again.
 */
type CancellationRow = Narrowed<
  Pick<
    Row<"payment_cancellations">,
    | "id"
    | "payment_id"
    | "status"
    | "amount"
    | "tax_free_amount"
    | "reason"
    | "requester"
    | "idempotency_key"
    | "current_cancellable_amount"
    | "portone_cancellation_id"
    | "failure_reason"
  >,
  {
    status: "REQUESTED" | "SUCCEEDED" | "FAILED";
    requester: "CUSTOMER" | "ADMIN";
    idempotency_key: string;
    current_cancellable_amount: number;
  }
>;

/** What the reservation answers besides the cancellation: the payment's method and its state at that moment. */
type ReservedRow = CancellationRow & Pick<Row<"payments">, "method_type"> & PaymentState;

interface PaymentState {
  readonly payment_status: PaymentStatus;
  readonly cancelled_amount: number;
  readonly cancellable_amount: number;
}

/** What to send PortOne: the reservation, and whether it is a retry of an earlier identical request. */
type Reservation =
  | {
    readonly kind: "call";
    readonly cancellation: CancellationRow;
    /** Sent to PortOne, never stored: only its masked form is kept. */
    readonly refundAccount: RefundAccount | undefined;
  }
  /** PortOne has (or had) this one: answered from the row and the payment as the reservation saw them. */
  | { readonly kind: "settled"; readonly cancellation: CancellationRow; readonly payment: PaymentState };

function maskName(name: string): string {
  const chars = [...name];
  return chars.length <= 1 ? "*" : `${chars[0]}${"*".repeat(chars.length - 1)}`;
}

/** A plain array, sent as the text[] the server types the parameter as (shared/infra/db-types.ts). */
const phoneRequiringPgs = [...pgProvidersRequiringRefundPhone];

/**
 * Step 1 in one statement: private.reserve_cancellation checks who may cancel and how much is left under
 * the payment's row lock, and records the REQUESTED cancellation with its reserved amount and event, or
 * finds this key's earlier one. A malformed refund account was refused while parsing the request; whether
 * the payment needs one (a virtual account) is decided under the lock, from the account's masked form.
 */
async function reserve(
  deps: AppDeps,
  caller: Caller,
  input: CancelRequest,
  portoneKey: string,
): Promise<Reservation> {
  const account = input.refundAccount;
  let rows: ReservedRow[];
  try {
    rows = await deps.sql<ReservedRow[]>`
      select id, payment_id, status, amount, tax_free_amount, reason, requester, idempotency_key,
             current_cancellable_amount, portone_cancellation_id, failure_reason, method_type,
             payment_status, cancelled_amount, cancellable_amount
      from private.reserve_cancellation(
        target_payment_id => ${input.paymentId},
        caller_id => ${caller.userId},
        caller_is_admin => ${caller.isAdmin},
        customers_may_cancel => ${deps.config.customerCancelPolicy === "allow"},
        portone_key => ${portoneKey},
        requested_amount => ${input.amount ?? null},
        requested_tax_free_amount => ${input.taxFreeAmount ?? null},
        cancel_reason => ${input.reason},
        masked_refund_account => ${
      account
        ? deps.sql.json({
          bank: account.bank,
          numberMasked: maskDigits(account.number),
          holderName: maskName(account.holderName),
        })
        : null
    },
        refund_account_has_phone => ${Boolean(account?.holderPhoneNumber)},
        pg_providers_requiring_phone => ${phoneRequiringPgs}
      )`;
  } catch (error) {
    throw asRefusal(error);
  }
  const row = rows[0]!;
  // a refused request stays refused: its retry answers the refusal again, never a 200 with FAILED inside
  if (row.status === "FAILED") throw refusalError(row.failure_reason ?? "", account !== undefined);
  const { method_type, payment_status, cancelled_amount, cancellable_amount, ...cancellation } = row;
  // only a request PortOne never acknowledged is sent again; one PortOne holds is settled by PortOne
  return row.status === "REQUESTED" && row.portone_cancellation_id === null
    ? { kind: "call", cancellation, refundAccount: method_type === "VIRTUAL_ACCOUNT" ? account : undefined }
    : { kind: "settled", cancellation, payment: { payment_status, cancelled_amount, cancellable_amount } };
}

/**
 * Settles under the payment lock together with a fresh snapshot (one call: the settlement rides with the
 * apply); falls back to the row alone when PortOne answered the cancel but not the re-fetch.
 */
async function settle(
  deps: AppDeps,
  cancellation: CancellationRow,
  answer: Omit<CancellationSettlement, "cancellationId">,
): Promise<void> {
  const settlement: CancellationSettlement = { cancellationId: cancellation.id, ...answer };
  try {
    const result = await syncPayment(deps, cancellation.payment_id, "cancel", { settlement });
    if (result.outcome === "applied" || result.outcome === "unchanged") return;
  } catch (error) {
    // PortOne answered the cancel but not the re-fetch: record the answer now; the webhook brings the rest
    log("warn", "cancel_settled_without_snapshot", { paymentId: cancellation.payment_id, error });
  }
  await deps.sql`select private.settle_cancellation(${settlement.cancellationId}, ${
    deps.sql.json(settlement as never)
  })`;
}

const refusalCodes: Record<
  string,
  { code: "cancel_amount_exceeds_cancellable" | "payment_not_cancellable" | "payment_out_of_sync" }
> = {
  CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN: { code: "payment_out_of_sync" },
  CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT: { code: "cancel_amount_exceeds_cancellable" },
  CANCEL_TAX_FREE_AMOUNT_EXCEEDS_CANCELLABLE_TAX_FREE_AMOUNT: { code: "cancel_amount_exceeds_cancellable" },
  CANCEL_TAX_AMOUNT_EXCEEDS_CANCELLABLE_TAX_AMOUNT: { code: "cancel_amount_exceeds_cancellable" },
  PAYMENT_ALREADY_CANCELLED: { code: "payment_not_cancellable" },
  PAYMENT_NOT_PAID: { code: "payment_not_cancellable" },
};

async function callPortOne(
  deps: AppDeps,
  cancellation: CancellationRow,
  refundAccount: RefundAccount | undefined,
): Promise<PaymentCancellation> {
  try {
    return await deps.portone.cancelPayment({
      paymentId: cancellation.payment_id,
      amount: cancellation.amount,
      ...(cancellation.tax_free_amount > 0 ? { taxFreeAmount: cancellation.tax_free_amount } : {}),
      reason: cancellation.reason,
      requester: cancellation.requester,
      currentCancellableAmount: cancellation.current_cancellable_amount,
      ...(refundAccount ? { refundAccount } : {}),
      idempotencyKey: cancellation.idempotency_key,
    });
  } catch (error) {
    if (!(error instanceof PortOneRefusal)) throw error; // unknown outcome: keep the reservation
    if (error.type === "IDEMPOTENCY_OUTSTANDING_REQUEST") {
      throw new AppError(
        "cancel_in_progress",
        "This cancellation is still being processed at PortOne; retry shortly",
      );
    }
    // PortOne refused: nothing was refunded, so the reservation is released and our view refreshed
    await settle(deps, cancellation, { status: "FAILED", failureReason: error.type });
    throw refusalError(error.type, refundAccount !== undefined, error);
  }
}

/**
 * The answer to a refused cancellation, from PortOne's refusal type; the same for the first request and
 * for every retry of it with the same Idempotency-Key (the type is kept as the row's failure_reason).
 */
function refusalError(type: string, withRefundAccount: boolean, refusal?: PortOneRefusal): AppError {
  const mapped = refusalCodes[type];
  if (mapped?.code === "payment_out_of_sync") {
    return new AppError(
      "payment_out_of_sync",
      "The payment changed at PortOne; review it and retry with a new Idempotency-Key",
    );
  }
  if (mapped) return new AppError(mapped.code, refusal?.message ?? "PortOne refused the cancellation");
  if (type === "INVALID_REQUEST" && withRefundAccount) {
    return new AppError("invalid_refund_account", "PortOne refused the refund account");
  }
  return new AppError("portone_error", "PortOne refused the cancellation", {
    cause: refusal,
    details: refusal?.pgCode ? { pgCode: refusal.pgCode, pgMessage: refusal.pgMessage ?? null } : {},
  });
}

/**
 * Requested before this moment and still unsettled means abandoned: a live request gives up after one
 * PortOne timeout, so twice that plus slack means nobody is waiting on it any more.
 */
export function abandonedCancellationCutoff(deps: AppDeps): Date {
  return new Date(Date.now() - (2 * deps.config.portone.timeoutMs + 30_000));
}

/**
 * Finishes cancellations of a payment that were reserved but never settled, so they stop blocking new
 * ones: the caller's process crashed, it never retried, or PortOne settled an asynchronous cancel without
 * telling us. Every one of them is re-fetched first (one snapshot of the payment settles those PortOne
 * performed or failed, and those that can no longer succeed); the requests PortOne never received are then
 * sent again with their persisted request and Idempotency-Key, which PortOne performs at most once and
 * refuses if the balance has moved since (currentCancellableAmount). Those PortOne still holds as REQUESTED
 * stay until it settles them. Virtual-account refunds cannot be resent (the account number is never
 * stored) and are left for an operator, with an error log line. Returns whether nothing is left unsettled.
 */
export async function recoverAbandonedCancellations(deps: AppDeps, paymentId: string): Promise<boolean> {
  const abandonedBefore = abandonedCancellationCutoff(deps);
  const abandoned = () =>
    deps.sql<(CancellationRow & Pick<Row<"payments">, "method_type">)[]>`
      select c.id, c.payment_id, c.status, c.amount, c.tax_free_amount, c.reason, c.requester, c.idempotency_key,
             c.current_cancellable_amount, c.portone_cancellation_id, c.failure_reason, p.method_type
      from public.payment_cancellations c join public.payments p on p.id = c.payment_id
      where c.payment_id = ${paymentId} and c.status = 'REQUESTED' and c.requested_at < ${abandonedBefore}
      order by c.requested_at`;
  if ((await abandoned()).length === 0) return false;

  await syncPayment(
    deps,
    paymentId,
    "cancel",
  ).catch((error) => log("warn", "cancel_recovery_sync_failed", { paymentId, error }));

  for (const cancellation of await abandoned()) {
    if (cancellation.portone_cancellation_id !== null) continue; // PortOne has it and has not decided yet
    if (cancellation.method_type === "VIRTUAL_ACCOUNT") {
      log("error", "cancel_needs_operator", { paymentId, cancellationId: cancellation.id });
      continue;
    }
    try {
      const answer = await callPortOne(deps, cancellation, undefined);
      await settle(deps, cancellation, answerToSettlement(answer));
      log("warn", "cancel_recovered", { paymentId, cancellationId: cancellation.id, status: answer.status });
    } catch (error) {
      // a refusal has already been settled as FAILED by callPortOne; an outage leaves it for next time
      log("warn", "cancel_recovery_failed", { paymentId, cancellationId: cancellation.id, error });
    }
  }
  const [left] = await deps.sql`
    select 1 from public.payment_cancellations where payment_id = ${paymentId} and status = 'REQUESTED' limit 1`;
  return !left;
}

function answerToSettlement(answer: PaymentCancellation): Omit<CancellationSettlement, "cancellationId"> {
  const status = answer.status === "SUCCEEDED" || answer.status === "FAILED" || answer.status === "REQUESTED"
    ? answer.status
    : "REQUESTED";
  return {
    status,
    portoneId: "id" in answer ? answer.id : undefined,
    pgCancellationId: "pgCancellationId" in answer ? answer.pgCancellationId : undefined,
  };
}

export async function cancelPayment(
  deps: AppDeps,
  caller: Caller,
  input: CancelRequest,
  clientKey: string,
): Promise<CancelResponse> {
  // Derived, not random: the same request retried after a timeout carries the same PortOne key.
  const portoneKey = `cancel-${(await sha256Hex(`${caller.userId}:${clientKey}`)).slice(0, 48)}`;
  let reservation: Reservation;
  try {
    reservation = await reserve(deps, caller, input, portoneKey);
  } catch (error) {
    // A cancellation whose caller vanished mid-call would block this payment for good: finish it first.
    if (!(error instanceof AppError && error.code === "cancel_in_progress")) throw error;
    if (!(await recoverAbandonedCancellations(deps, input.paymentId))) throw error;
    reservation = await reserve(deps, caller, input, portoneKey);
  }
  const cancellation = reservation.cancellation;
  if (reservation.kind === "settled") {
    return cancelResponse(cancellation, cancellation.status, reservation.payment);
  }
  const answer = await callPortOne(deps, cancellation, reservation.refundAccount);
  await settle(deps, cancellation, answerToSettlement(answer));
  // the settlement may have come from PortOne's answer or from the snapshot synced with it: read what it left
  const [row] = await deps.sql<(PaymentState & Pick<CancellationRow, "status">)[]>`
    select c.status, p.status as payment_status, p.cancelled_amount, p.cancellable_amount
    from public.payment_cancellations c join public.payments p on p.id = c.payment_id
    where c.id = ${cancellation.id}`;
  return cancelResponse(cancellation, row!.status, row!);
}

function cancelResponse(
  cancellation: CancellationRow,
  status: CancellationRow["status"],
  payment: PaymentState,
): CancelResponse {
  return {
    paymentId: cancellation.payment_id,
    status: payment.payment_status,
    cancellation: { id: cancellation.id, amount: cancellation.amount, status },
    cancelledAmount: payment.cancelled_amount,
    cancellableAmount: payment.cancellable_amount,
  };
}

/** The `cancel` function: POST { paymentId, amount?, taxFreeAmount?, reason, refundAccount? } + Idempotency-Key. */
export function cancelHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "cancel",
    methods: ["POST"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ request, caller }) => {
      const input = await readJson(request, CancelRequest);
      const key = idempotencyKeyFrom(request);
      if (key === null) {
        throw new AppError("invalid_request", "Cancelling requires an Idempotency-Key header", {
          details: { field: "Idempotency-Key" },
        });
      }
      // checked in the claim's own statement, before the key is recorded: someone else's payment writes nothing
      const scope = {
        userId: caller.userId,
        route: "cancel",
        key,
        request: input,
        requires: [accessiblePayment(caller, input.paymentId)],
      };
      return replyJson(await withIdempotency(deps.sql, scope, () => cancelPayment(deps, caller, input, key)));
    },
  });
}
