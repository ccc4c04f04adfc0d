/**
 * The one sync routine shared by `confirm`, `webhook` and `reconcile` (and used after cancels and billing
 * key charges): re-fetch the payment from PortOne → verify it against our order → apply it in one
 * transaction under the payment's row lock. PortOne is the only truth; request bodies and webhook payloads
 * only say which payment to look at.
 *
 * Apply is monotonic: a snapshot is taken only if it is newer than the stored watermark (PortOne's
 * statusChangedAt), or as new with more progress (status rank, then cancelled amount) — so racing confirms,
 * webhooks delivered out of order and two events in the same second all converge on the newest state, with
 * exactly one audit event per real change.
 */
import type { PortOneGateway } from "../portone/gateway.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import { type ParsedPayment, parsePayment, type PaymentSnapshot } from "../portone/snapshot.ts";
import { canTransition, type PaymentStatus, statusRank } from "./status.ts";
import type { Sql, TransactionSql } from "../infra/db.ts";
import { log } from "../infra/log.ts";

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

interface StoredPayment {
  id: string;
  order_id: string;
  store_id: string;
  status: PaymentStatus;
  total_amount: number;
  tax_free_amount: number;
  currency: string;
  paid_amount: number;
  cancelled_amount: number;
  cancellable_amount: number;
  mismatch_reason: string | null;
  status_changed_at: Date | null;
  channel_key: string | null;
  billing_channel_key: string | null;
  virtual_account_bank: string | null;
  virtual_account_number: string | null;
  virtual_account_holder: string | null;
  virtual_account_expires_at: Date | null;
  order_name: string;
  order_status: string;
}

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

async function syncCancellations(
  tx: TransactionSql,
  paymentId: string,
  snapshot: PaymentSnapshot,
): Promise<number> {
  for (const c of snapshot.cancellations) {
    const settledAt = c.status === "REQUESTED" ? null : c.cancelledAt ?? new Date().toISOString();
    const known = await tx`
      update public.payment_cancellations
      set status = ${c.status}, settled_at = ${settledAt}, pg_cancellation_id = ${c.pgCancellationId}
      where portone_cancellation_id = ${c.portoneId} and payment_id = ${paymentId}
        and (status = 'REQUESTED' or status = ${c.status})
      returning id`;
    if (known.length > 0) continue;
    const exists =
      await tx`select 1 from public.payment_cancellations where portone_cancellation_id = ${c.portoneId}`;
    if (exists.length > 0) continue;
    // A cancel we asked for whose answer never reached us (timeout, crash) shows up here first: claim the
    // oldest matching request of ours instead of counting the same refund twice.
    const claimed = await tx`
      update public.payment_cancellations
      set portone_cancellation_id = ${c.portoneId}, status = ${c.status}, settled_at = ${settledAt},
          pg_cancellation_id = ${c.pgCancellationId}
      where id = (
        select id from public.payment_cancellations
        where payment_id = ${paymentId} and portone_cancellation_id is null and status = 'REQUESTED'
          and amount = ${c.amount}
        order by requested_at, id
        limit 1
      )
      returning id`;
    if (claimed.length > 0) continue;
    await tx`
      insert into public.payment_cancellations
        (payment_id, status, amount, tax_free_amount, reason, requester, portone_cancellation_id,
         pg_cancellation_id, requested_at, settled_at)
      values
        (${paymentId}, ${c.status}, ${c.amount}, ${Math.min(c.taxFreeAmount, c.amount)},
         ${(c.reason || "cancelled at PortOne").slice(0, 200)}, 'PORTONE', ${c.portoneId},
         ${c.pgCancellationId}, ${c.requestedAt ?? new Date().toISOString()}, ${settledAt})
      on conflict (portone_cancellation_id) do nothing`;
  }
  const [reserved] = await tx<{ amount: number }[]>`
    select coalesce(sum(amount), 0)::bigint as amount from public.payment_cancellations
    where payment_id = ${paymentId} and status = 'REQUESTED'`;
  return reserved?.amount ?? 0;
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
    const [row] = await selectPayment(tx, snapshot.id, true);
    if (!row) return { outcome: "not_ours" } as const;
    await options.beforeApply?.(tx);
    // The locking read re-reads a payment row that changed while we waited, but not the joined order;
    // answers therefore come from a fresh statement, which sees everything committed before the lock.
    const freshView = async () => toView((await selectPayment(tx, snapshot.id, false))[0]!);
    if (!isNewerSnapshot(snapshot, row)) return { outcome: "unchanged", payment: await freshView() } as const;
    if (!canTransition(row.status, snapshot.status)) {
      // PortOne reporting a move our machine forbids (e.g. back to READY after a failure) is kept out of
      // our records and surfaced, instead of failing every retry of the delivery that carried it.
      log("error", "payment_transition_refused", {
        paymentId: row.id,
        from: row.status,
        to: snapshot.status,
        source,
      });
      return { outcome: "unchanged", payment: await freshView() } as const;
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
      // The row lock taken by this update serializes two payments racing for one order.
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

    const reserved = await syncCancellations(tx, snapshot.id, snapshot);
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
    return { outcome: changed ? "applied" : "unchanged", payment: await freshView() } as const;
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
