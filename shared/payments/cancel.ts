/**
 * `cancel`: full and partial refunds that can never pay out twice.
 *
 * 1. Reserve: one transaction under the payment's row lock checks who may cancel and how much is left, and
 *    records the cancellation as REQUESTED with the exact request we will send PortOne, including its
 *    Idempotency-Key (derived from the caller's own Idempotency-Key, so a retried request reuses it).
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
import { CancelRequest, type CancelResponse, RefundAccount } from "../contract/cancel.ts";
import { AppError } from "../infra/errors.ts";
import { defineFunction, type EdgeFunction, readJson, replyJson } from "../infra/http.ts";
import { sha256Hex } from "../infra/crypto.ts";
import { idempotencyKeyFrom, withIdempotency } from "../infra/idempotency.ts";
import { requireAccessiblePayment } from "./ownership.ts";
import { log } from "../infra/log.ts";
import { type PaymentCancellation, PortOneRefusal } from "../portone/gateway.ts";
import { maskDigits } from "../portone/snapshot.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { type CancellationSettlement, syncPayment } from "./sync.ts";
import type { Narrowed, Row } from "../infra/rows.ts";

type LockedPayment = Pick<
  Row<"payments">,
  | "id"
  | "user_id"
  | "status"
  | "paid_amount"
  | "cancelled_amount"
  | "tax_free_amount"
  | "cancelled_tax_free_amount"
  | "method_type"
  | "pg_provider"
>;

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

/** What to send PortOne: the reservation, and whether it is a retry of an earlier identical request. */
type Reservation =
  | {
    readonly kind: "call";
    readonly cancellation: CancellationRow;
    /** Sent to PortOne, never stored: only its masked form is kept. */
    readonly refundAccount: RefundAccount | undefined;
  }
  | { readonly kind: "settled"; readonly cancellation: CancellationRow };

function maskName(name: string): string {
  const chars = [...name];
  return chars.length <= 1 ? "*" : `${chars[0]}${"*".repeat(chars.length - 1)}`;
}

/** Refund-account problems are caught before PortOne is ever called. */
function checkRefundAccount(payment: LockedPayment, raw: unknown): RefundAccount | undefined {
  if (payment.method_type !== "VIRTUAL_ACCOUNT") return undefined;
  if (raw === undefined) {
    throw new AppError(
      "refund_account_required",
      "A virtual-account payment is refunded to a bank account: send refundAccount",
    );
  }
  const parsed = RefundAccount.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AppError(
      "invalid_refund_account",
      `Invalid refundAccount.${issue?.path.join(".")}: ${issue?.message}`,
      {
        details: { field: `refundAccount.${issue?.path.join(".") ?? ""}` },
      },
    );
  }
  if (pgProvidersRequiringRefundPhone.has(payment.pg_provider ?? "") && !parsed.data.holderPhoneNumber) {
    throw new AppError("invalid_refund_account", "This PG needs refundAccount.holderPhoneNumber", {
      details: { field: "refundAccount.holderPhoneNumber" },
    });
  }
  return parsed.data;
}

async function reserve(
  deps: AppDeps,
  caller: Caller,
  input: CancelRequest,
  portoneKey: string,
): Promise<Reservation> {
  return await deps.sql.begin(async (tx) => {
    const [payment] = await tx<LockedPayment[]>`
      select id, user_id, status, paid_amount, cancelled_amount, tax_free_amount, cancelled_tax_free_amount,
             method_type, pg_provider
      from public.payments where id = ${input.paymentId}
      for update`;
    const isOwner = payment?.user_id === caller.userId;
    if (!payment || (!isOwner && !caller.isAdmin)) throw new AppError("not_found", "Payment not found");
    if (!caller.isAdmin && deps.config.customerCancelPolicy !== "allow") {
      throw new AppError("forbidden", "Cancelling is not open to customers; ask the merchant");
    }

    const [existing] = await tx<CancellationRow[]>`
      select * from public.payment_cancellations where idempotency_key = ${portoneKey}`;
    if (existing) {
      const sameRequest = existing.payment_id === input.paymentId &&
        (input.amount === undefined || input.amount === existing.amount) &&
        (input.taxFreeAmount === undefined || input.taxFreeAmount === existing.tax_free_amount);
      if (!sameRequest) {
        throw new AppError(
          "idempotency_key_reused",
          "This Idempotency-Key was used for a different cancellation",
        );
      }
      // a refused request stays refused: its retry answers the refusal again, never a 200 with FAILED inside
      if (existing.status === "FAILED") {
        throw refusalError(existing.failure_reason ?? "", input.refundAccount !== undefined);
      }
      // only a request PortOne never acknowledged is sent again; one PortOne holds is settled by PortOne
      return existing.status === "REQUESTED" && existing.portone_cancellation_id === null
        ? {
          kind: "call",
          cancellation: existing,
          refundAccount: checkRefundAccount(payment, input.refundAccount),
        }
        : { kind: "settled", cancellation: existing };
    }

    const [inFlight] = await tx`
      select id from public.payment_cancellations where payment_id = ${payment.id} and status = 'REQUESTED' limit 1`;
    if (inFlight) {
      throw new AppError(
        "cancel_in_progress",
        "Another cancellation of this payment is in progress; retry shortly",
      );
    }
    if (payment.status !== "PAID" && payment.status !== "PARTIAL_CANCELLED") {
      throw new AppError("payment_not_cancellable", `A ${payment.status} payment cannot be cancelled`);
    }
    const cancellable = payment.paid_amount - payment.cancelled_amount;
    const amount = input.amount ?? cancellable;
    if (amount <= 0 || amount > cancellable) {
      throw new AppError("cancel_amount_exceeds_cancellable", `At most ${cancellable} can be cancelled`, {
        details: { cancellableAmount: cancellable },
      });
    }
    const taxFreeLeft = Math.max(payment.tax_free_amount - payment.cancelled_tax_free_amount, 0);
    const taxFree = input.taxFreeAmount ?? 0;
    if (taxFree > taxFreeLeft || taxFree > amount) {
      throw new AppError(
        "cancel_amount_exceeds_cancellable",
        `At most ${Math.min(taxFreeLeft, amount)} tax-free can be cancelled`,
        {
          details: { field: "taxFreeAmount", cancellableTaxFreeAmount: taxFreeLeft },
        },
      );
    }
    const account = checkRefundAccount(payment, input.refundAccount);

    const [created] = await tx<CancellationRow[]>`
      insert into public.payment_cancellations
        (payment_id, status, amount, tax_free_amount, reason, requester, requested_by, idempotency_key,
         current_cancellable_amount, refund_account_masked)
      values
        (${payment.id}, 'REQUESTED', ${amount}, ${taxFree}, ${input.reason}, ${
      caller.isAdmin ? "ADMIN" : "CUSTOMER"
    },
         ${caller.userId}, ${portoneKey}, ${cancellable},
         ${
      account
        ? tx.json({
          bank: account.bank,
          numberMasked: maskDigits(account.number),
          holderName: maskName(account.holderName),
        })
        : null
    })
      returning *`;
    await tx`
      update public.payments set cancel_reserved_amount = cancel_reserved_amount + ${amount} where id = ${payment.id}`;
    await tx`
      insert into public.payment_events (payment_id, source, kind, from_status, to_status, detail)
      values (${payment.id}, 'cancel', 'cancel_requested', ${payment.status}, ${payment.status},
              ${
      tx.json({ cancellationId: created!.id, amount, taxFreeAmount: taxFree, requester: created!.requester })
    })`;
    return { kind: "call", cancellation: created!, refundAccount: account };
  });
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
      select c.*, p.method_type from public.payment_cancellations c join public.payments p on p.id = c.payment_id
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
  if (reservation.kind === "call") {
    const answer = await callPortOne(deps, cancellation, reservation.refundAccount);
    await settle(deps, cancellation, answerToSettlement(answer));
  }
  const [row] = await deps.sql<
    (
      & CancellationRow
      & { payment_status: Row<"payments">["status"]; cancellable_amount: number }
      & Pick<Row<"payments">, "cancelled_amount">
    )[]
  >`
    select c.*, p.status as payment_status, p.cancelled_amount, p.cancellable_amount
    from public.payment_cancellations c join public.payments p on p.id = c.payment_id
    where c.id = ${cancellation.id}`;
  return {
    paymentId: row!.payment_id,
    status: row!.payment_status,
    cancellation: { id: row!.id, amount: row!.amount, status: row!.status },
    cancelledAmount: row!.cancelled_amount,
    cancellableAmount: row!.cancellable_amount,
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
      // checked before the Idempotency-Key is recorded: someone else's payment writes nothing
      await requireAccessiblePayment(deps.sql, caller, input.paymentId);
      const scope = { userId: caller.userId, route: "cancel", key, request: input };
      return replyJson(await withIdempotency(deps.sql, scope, () => cancelPayment(deps, caller, input, key)));
    },
  });
}
