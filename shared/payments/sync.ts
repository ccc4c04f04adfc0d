/**
 * The one sync routine shared by `confirm`, `webhook` and `reconcile` (and used after cancels and billing
 * key charges): re-fetch the payment from PortOne → verify it against our order → apply it in one
 * transaction under the order's and then the payment's row lock (the one lock order of every transaction
 * that takes both). PortOne is the only truth; request bodies and webhook payloads only say which payment to
 * look at.
 *
 * Apply is monotonic: a snapshot is taken only if it is newer than the stored watermark (PortOne's
 * statusChangedAt), or as new with more progress (status rank, then cancelled amount) — so racing confirms,
 * webhooks delivered out of order and two events in the same second all converge on the newest state, with
 * exactly one audit event per real change.
 *
 * Cancellations are reconciled on every sync, newer snapshot or not (an asynchronous cancel can fail at
 * PortOne without any payment-level field changing), and our reservations that can no longer succeed are
 * settled in the same transaction, so PortOne's truth is never refused by the reserved ≤ cancellable check.
 */
import type { PortOneGateway } from "../portone/gateway.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import { type ParsedPayment, parsePayment, type PaymentSnapshot } from "../portone/snapshot.ts";
import { canTransition, type PaymentStatus, statusRank } from "./status.ts";
import type { Sql, TransactionSql } from "../infra/db.ts";
import type { Narrowed, Row, SqlRow } from "../infra/rows.ts";
import { log } from "../infra/log.ts";
import { syncCancellations } from "./sync-cancellations.ts";

export type SyncSource = "confirm" | "webhook" | "reconcile" | "cancel" | "billing";

export type MismatchReason =
  | "store_mismatch"
  | "amount_mismatch"
  | "tax_free_mismatch"
  | "currency_mismatch"
  | "order_name_mismatch"
  | "test_channel"
  | "channel_mismatch"
  | "order_already_paid";

/** What the sync needs of the function's dependencies (AppDeps satisfies it). */
export interface SyncDeps {
  readonly sql: Sql;
  readonly portone: Pick<PortOneGateway, "getPayment">;
  readonly config: { readonly portone: { readonly requireLiveChannel: boolean } };
}

/** What clients are told about a payment. */
export interface PaymentView {
  readonly paymentId: string;
  readonly status: PaymentStatus;
  readonly order: { readonly id: string; readonly status: string };
  readonly currency: string;
  readonly totalAmount: number;
  readonly paidAmount: number;
  readonly cancelledAmount: number;
  readonly cancellableAmount: number;
  readonly mismatchReason: string | null;
  readonly virtualAccount?: {
    readonly bank: string | null;
    readonly accountNumber: string;
    readonly holder: string | null;
    readonly expiresAt: string | null;
  };
}

export type SyncResult =
  /** Our database took the snapshot (a status or amount changed, or a newer watermark). */
  | { readonly outcome: "applied"; readonly payment: PaymentView }
  /** The snapshot was not newer than what we hold; nothing written. */
  | { readonly outcome: "unchanged"; readonly payment: PaymentView }
  /** PortOne has no such payment yet (the customer never opened the payment window). */
  | { readonly outcome: "not_at_portone"; readonly payment: PaymentView }
  /** PortOne reports a status this code does not know; nothing written. */
  | { readonly outcome: "unrecognized"; readonly payment: PaymentView; readonly status: string }
  /** We never prepared this paymentId. */
  | { readonly outcome: "not_ours" };

/** The payment as the sync reads it, with its order's name and status (joined). */
type StoredPayment =
  & Narrowed<
    Pick<
      SqlRow<"payments", "status_changed_at" | "virtual_account_expires_at">,
      | "id"
      | "order_id"
      | "store_id"
      | "status"
      | "total_amount"
      | "tax_free_amount"
      | "currency"
      | "paid_amount"
      | "cancelled_amount"
      | "cancellable_amount"
      | "mismatch_reason"
      | "status_changed_at"
      | "channel_key"
      | "billing_channel_key"
      | "virtual_account_bank"
      | "virtual_account_number"
      | "virtual_account_holder"
      | "virtual_account_expires_at"
    >,
    // cancellable_amount is generated from two not-null columns, so never null
    { status: PaymentStatus; cancellable_amount: number }
  >
  & { order_name: Row<"orders">["order_name"]; order_status: Row<"orders">["status"] };

const selectPayment = (tx: Sql | TransactionSql, paymentId: string, lock: boolean) =>
  tx<StoredPayment[]>`
    select p.id, p.order_id, p.store_id, p.status, p.total_amount, p.tax_free_amount, p.currency,
           p.paid_amount, p.cancelled_amount, p.cancellable_amount, p.mismatch_reason, p.status_changed_at,
           p.channel_key, p.billing_channel_key,
           p.virtual_account_bank, p.virtual_account_number, p.virtual_account_holder,
           p.virtual_account_expires_at, o.order_name, o.status as order_status
    from public.payments p
    join public.orders o on o.id = p.order_id
    where p.id = ${paymentId}
    ${lock ? tx`for update of p` : tx``}`;

function toView(row: StoredPayment): PaymentView {
  const view: PaymentView = {
    paymentId: row.id,
    status: row.status,
    order: { id: row.order_id, status: row.order_status },
    currency: row.currency,
    totalAmount: row.total_amount,
    paidAmount: row.paid_amount,
    cancelledAmount: row.cancelled_amount,
    cancellableAmount: row.cancellable_amount,
    mismatchReason: row.mismatch_reason,
  };
  return row.virtual_account_number
    ? {
      ...view,
      virtualAccount: {
        bank: row.virtual_account_bank,
        accountNumber: row.virtual_account_number,
        holder: row.virtual_account_holder,
        expiresAt: row.virtual_account_expires_at?.toISOString() ?? null,
      },
    }
    : view;
}

/** Is the snapshot newer than what we hold? Equal instants are ordered by progress. */
export function isNewerSnapshot(
  snapshot: Pick<PaymentSnapshot, "statusChangedAt" | "status" | "cancelledAmount" | "paidAmount">,
  stored: {
    status: PaymentStatus;
    status_changed_at: Date | null;
    cancelled_amount: number;
    paid_amount: number;
  },
): boolean {
  if (stored.status_changed_at === null) return true;
  const incoming = Date.parse(snapshot.statusChangedAt);
  const held = stored.status_changed_at.getTime();
  if (incoming !== held) return incoming > held;
  const progress = [statusRank[snapshot.status], snapshot.cancelledAmount, snapshot.paidAmount];
  const heldProgress = [statusRank[stored.status], stored.cancelled_amount, stored.paid_amount];
  for (let i = 0; i < progress.length; i++) {
    if (progress[i] !== heldProgress[i]) return progress[i]! > heldProgress[i]!;
  }
  return false;
}

/** Differences between PortOne's payment and our order that forbid treating it as paying the order. */
export function verifySnapshot(
  snapshot: PaymentSnapshot,
  expected: {
    storeId: string;
    totalAmount: number;
    taxFreeAmount: number;
    currency: string;
    orderName: string;
    /** The channels we issued for this attempt (prepare's, the saved card's); any other is flagged. */
    channelKeys: readonly string[];
  },
  requireLiveChannel: boolean,
): MismatchReason[] {
  // READY and FAILED move no money; what the window was opened with is irrelevant until it does
  if (snapshot.status === "READY" || snapshot.status === "FAILED") return [];
  const reasons: MismatchReason[] = [];
  if (snapshot.storeId !== expected.storeId) reasons.push("store_mismatch");
  if (snapshot.totalAmount !== expected.totalAmount) reasons.push("amount_mismatch");
  if (snapshot.taxFreeAmount !== expected.taxFreeAmount) reasons.push("tax_free_mismatch");
  if (snapshot.currency !== expected.currency) reasons.push("currency_mismatch");
  if (snapshot.orderName !== expected.orderName) reasons.push("order_name_mismatch");
  if (requireLiveChannel && snapshot.channelType !== "LIVE") reasons.push("test_channel");
  // another channel of the store (a stale test key, a LIVE channel we never configured) pays nothing
  if (snapshot.channelKey === null || !expected.channelKeys.includes(snapshot.channelKey)) {
    reasons.push("channel_mismatch");
  }
  return reasons;
}

function orderStatusFor(status: PaymentStatus): "paid" | "partial_cancelled" | "cancelled" | null {
  switch (status) {
    case "PAID":
      return "paid";
    case "PARTIAL_CANCELLED":
      return "partial_cancelled";
    case "CANCELLED":
      return "cancelled";
    case "READY":
    case "PAY_PENDING":
    case "VIRTUAL_ACCOUNT_ISSUED":
    case "FAILED":
      return null;
  }
}

/** Applies a parsed snapshot in one transaction; exported for tests that feed snapshots in any order. */
export async function applySnapshot(
  sql: Sql,
  snapshot: PaymentSnapshot,
  source: SyncSource,
  options: {
    requireLiveChannel: boolean;
    webhookId?: string | undefined;
    /** Runs under the payment's row lock before the snapshot is applied (e.g. settling our own cancel). */
    beforeApply?: ((tx: TransactionSql) => Promise<void>) | undefined;
  },
): Promise<SyncResult> {
  return await sql.begin(async (tx) => {
    // One lock order everywhere: an order, then its payments (prepare and the billing charge lock the order
    // before touching its attempts). A payment's order never changes, so reading it unlocked is safe.
    const [owner] = await tx<{ order_id: string }[]>`
      select order_id from public.payments where id = ${snapshot.id}`;
    if (!owner) return { outcome: "not_ours" } as const;
    await tx`select 1 from public.orders where id = ${owner.order_id} for update`;
    const [row] = await selectPayment(tx, snapshot.id, true);
    if (!row) return { outcome: "not_ours" } as const;
    await options.beforeApply?.(tx);
    // The locking read re-reads a payment row that changed while we waited, but not the joined order;
    // answers therefore come from a fresh statement, which sees everything committed before the lock.
    const freshView = async () => toView((await selectPayment(tx, snapshot.id, false))[0]!);

    let take = isNewerSnapshot(snapshot, row);
    if (take && !canTransition(row.status, snapshot.status)) {
      // PortOne reporting a move our machine forbids (e.g. back to READY after a failure) is kept out of
      // our records and surfaced, instead of failing every retry of the delivery that carried it.
      log("error", "payment_transition_refused", {
        paymentId: row.id,
        from: row.status,
        to: snapshot.status,
        source,
      });
      take = false;
    }

    // PortOne's paid − cancelled balance only shrinks: the freshest we know is the smaller of the two
    const heldBalance = row.paid_amount - row.cancelled_amount;
    const snapshotBalance = snapshot.paidAmount - snapshot.cancelledAmount;
    const { reserved, settled } = await syncCancellations(tx, snapshot, source, {
      freshest: take ? snapshotBalance : Math.min(heldBalance, snapshotBalance),
      recorded: take ? snapshotBalance : heldBalance,
    });

    if (!take) {
      await tx`
        update public.payments set cancel_reserved_amount = ${reserved}
        where id = ${snapshot.id} and cancel_reserved_amount <> ${reserved}`;
      return { outcome: settled > 0 ? "applied" : "unchanged", payment: await freshView() } as const;
    }

    const reasons: MismatchReason[] = verifySnapshot(snapshot, {
      storeId: row.store_id,
      totalAmount: row.total_amount,
      taxFreeAmount: row.tax_free_amount,
      currency: row.currency,
      orderName: row.order_name,
      channelKeys: [row.channel_key, row.billing_channel_key].filter((key): key is string => key !== null),
    }, options.requireLiveChannel);

    const orderStatus = orderStatusFor(snapshot.status);
    if (reasons.length === 0 && row.mismatch_reason === null && orderStatus && snapshot.paidAmount > 0) {
      const updated = await tx`
        update public.orders
        set status = ${orderStatus}, paid_payment_id = ${snapshot.id},
            paid_at = coalesce(paid_at, ${snapshot.paidAt ?? new Date().toISOString()}), updated_at = now()
        where id = ${row.order_id} and (paid_payment_id is null or paid_payment_id = ${snapshot.id})
        returning id`;
      if (updated.length === 0) reasons.push("order_already_paid");
    }
    const newlyMismatched = row.mismatch_reason === null && reasons.length > 0;
    const mismatchReason = row.mismatch_reason ?? (reasons.length > 0 ? reasons.join(",") : null);

    const va = snapshot.virtualAccount;
    await tx`
      update public.payments set
        status = ${snapshot.status},
        paid_amount = ${snapshot.paidAmount},
        cancelled_amount = ${snapshot.cancelledAmount},
        cancelled_tax_free_amount = ${snapshot.cancelledTaxFreeAmount},
        cancel_reserved_amount = ${reserved},
        channel_type = ${snapshot.channelType},
        pg_provider = ${snapshot.pgProvider},
        pg_tx_id = ${snapshot.pgTxId},
        method_type = ${snapshot.methodType},
        method_summary = ${snapshot.methodSummary === null ? null : tx.json(snapshot.methodSummary as never)},
        virtual_account_bank = coalesce(${va?.bank ?? null}, virtual_account_bank),
        virtual_account_number = coalesce(${va?.accountNumber || null}, virtual_account_number),
        virtual_account_holder = coalesce(${va?.holder ?? null}, virtual_account_holder),
        virtual_account_expires_at = coalesce(${
      va?.expiresAt ?? null
    }::timestamptz, virtual_account_expires_at),
        failure_reason = ${snapshot.failureReason},
        mismatch_reason = ${mismatchReason},
        paid_at = ${snapshot.paidAt},
        failed_at = ${snapshot.failedAt},
        cancelled_at = ${snapshot.cancelledAt},
        status_changed_at = ${snapshot.statusChangedAt},
        portone_snapshot = ${tx.json(snapshot.stored as never)},
        synced_at = now()
      where id = ${snapshot.id}`;

    const changed = snapshot.status !== row.status || snapshot.paidAmount !== row.paid_amount ||
      snapshot.cancelledAmount !== row.cancelled_amount || newlyMismatched;
    if (changed) {
      await tx`
        insert into public.payment_events (payment_id, source, kind, from_status, to_status, detail, webhook_id)
        values (${snapshot.id}, ${source}, ${newlyMismatched ? "mismatch" : "status_changed"}, ${row.status},
                ${snapshot.status}, ${
        tx.json({
          statusChangedAt: snapshot.statusChangedAt,
          paidAmount: snapshot.paidAmount,
          cancelledAmount: snapshot.cancelledAmount,
          mismatch: reasons,
        } as never)
      }, ${options.webhookId ?? null})`;
      log(newlyMismatched ? "warn" : "info", "payment_synced", {
        paymentId: snapshot.id,
        source,
        from: row.status,
        to: snapshot.status,
        mismatch: reasons,
      });
    }
    return { outcome: changed || settled > 0 ? "applied" : "unchanged", payment: await freshView() } as const;
  });
}

/** Reads our view of a payment without syncing. */
export async function readPaymentView(sql: Sql, paymentId: string): Promise<PaymentView | null> {
  const [row] = await selectPayment(sql, paymentId, false);
  return row ? toView(row) : null;
}

export async function syncPayment(
  deps: SyncDeps,
  paymentId: string,
  source: SyncSource,
  options: { webhookId?: string; beforeApply?: (tx: TransactionSql) => Promise<void> } = {},
): Promise<SyncResult> {
  let parsed: ParsedPayment;
  try {
    parsed = parsePayment(await deps.portone.getPayment(paymentId));
  } catch (error) {
    if (error instanceof PortOneRefusal && error.type === "PAYMENT_NOT_FOUND") {
      const payment = await readPaymentView(deps.sql, paymentId);
      return payment ? { outcome: "not_at_portone", payment } : { outcome: "not_ours" };
    }
    throw error;
  }
  if (parsed.kind === "unrecognized") {
    log("warn", "payment_status_unrecognized", { paymentId, status: parsed.status, source });
    const payment = await readPaymentView(deps.sql, paymentId);
    return payment ? { outcome: "unrecognized", payment, status: parsed.status } : { outcome: "not_ours" };
  }
  return await applySnapshot(deps.sql, parsed, source, {
    requireLiveChannel: deps.config.portone.requireLiveChannel,
    webhookId: options.webhookId,
    beforeApply: options.beforeApply,
  });
}
