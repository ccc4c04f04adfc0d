/**
 * The one sync routine shared by `confirm`, `webhook` and `reconcile` (and used after cancels and billing
 * key charges): re-fetch the payment from PortOne → verify it against our order → apply it. PortOne is the
 * only truth; request bodies and webhook payloads only say which payment to look at.
 *
 * The apply is one call of `private.apply_payment_snapshot` (supabase/migrations/20261201170000_…): one
 * round trip and one commit, under the order's and then the payment's row lock (the one lock order of
 * every transaction that takes both). It is monotonic: a snapshot is taken only if it is newer than the
 * stored watermark (PortOne's statusChangedAt), or as new with more progress (status rank, then cancelled
 * amount) — so racing confirms, webhooks delivered out of order and two events in the same second all
 * converge on the newest state, with exactly one audit event per real change. Cancellations are brought in
 * line with PortOne's list on every apply, newer snapshot or not, and our reservations that can no longer
 * succeed are settled in the same transaction, so PortOne's truth is never refused by the reserved ≤
 * cancellable check.
 */
import type { PortOneGateway } from "../portone/gateway.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import { type ParsedPayment, parsePayment, type PaymentSnapshot } from "../portone/snapshot.ts";
import type { PaymentStatus } from "./status.ts";
import type { Sql } from "../infra/db.ts";
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

/** PortOne's answer to one of our own cancel requests, recorded under the apply's locks (cancel.ts). */
export interface CancellationSettlement {
  readonly cancellationId: string;
  readonly status: "REQUESTED" | "SUCCEEDED" | "FAILED";
  readonly portoneId?: string | undefined;
  readonly pgCancellationId?: string | undefined;
  readonly failureReason?: string | undefined;
}

/** What `private.apply_payment_snapshot` answers: the outcome and what the log lines need. */
interface AppliedSnapshot {
  readonly outcome: "applied" | "unchanged" | "not_ours";
  readonly payment?: PaymentView;
  readonly changed?: {
    readonly from: PaymentStatus;
    readonly to: PaymentStatus;
    readonly mismatch: MismatchReason[];
    readonly newlyMismatched: boolean;
  } | null;
  readonly refused?: { readonly from: PaymentStatus; readonly to: string } | null;
  /** Our reservations settled FAILED because PortOne's balance can no longer carry them. */
  readonly unreachable?: string[];
  /** Set when our reservations did not fit beside PortOne's own pending cancellations: those refused. */
  readonly crowded?: string[] | null;
}

/** The log lines of one apply, written here because the database cannot. */
function logApplied(paymentId: string, source: SyncSource, applied: AppliedSnapshot): void {
  if (applied.refused) {
    // PortOne reporting a move our machine forbids is kept out of our records and surfaced
    log("error", "payment_transition_refused", { paymentId, ...applied.refused, source });
  }
  if (applied.unreachable && applied.unreachable.length > 0) {
    log("warn", "cancel_reservation_unreachable", { paymentId, cancellations: applied.unreachable });
  }
  if (applied.crowded) {
    log("warn", "cancel_reservation_crowded_out", { paymentId, cancellations: applied.crowded });
  }
  if (applied.changed) {
    log(applied.changed.newlyMismatched ? "warn" : "info", "payment_synced", {
      paymentId,
      source,
      from: applied.changed.from,
      to: applied.changed.to,
      mismatch: applied.changed.mismatch,
    });
  }
}

/** The result the callers see, from what the database answered. */
export function syncResultOf(paymentId: string, source: SyncSource, applied: AppliedSnapshot): SyncResult {
  logApplied(paymentId, source, applied);
  if (applied.outcome === "not_ours" || !applied.payment) return { outcome: "not_ours" };
  return { outcome: applied.outcome, payment: applied.payment };
}

/** Applies a parsed snapshot in one statement; exported for tests that feed snapshots in any order. */
export async function applySnapshot(
  sql: Sql,
  snapshot: PaymentSnapshot,
  source: SyncSource,
  options: {
    requireLiveChannel: boolean;
    webhookId?: string | undefined;
    /** PortOne's answer to our own cancel, recorded under the same locks before the snapshot is compared. */
    settlement?: CancellationSettlement | undefined;
  },
): Promise<SyncResult> {
  const [row] = await sql<{ applied: AppliedSnapshot }[]>`
    select private.apply_payment_snapshot(
      ${sql.json(snapshot as never)}, ${source}, ${options.requireLiveChannel}, ${options.webhookId ?? null},
      ${options.settlement ? sql.json(options.settlement as never) : null}
    ) as applied`;
  return syncResultOf(snapshot.id, source, row!.applied);
}

/** Reads our view of a payment without syncing. */
export async function readPaymentView(sql: Sql, paymentId: string): Promise<PaymentView | null> {
  const [row] = await sql<{ view: PaymentView | null }[]>`select private.payment_view(${paymentId}) as view`;
  return row?.view ?? null;
}

/** PortOne's word on a payment: a snapshot to apply, no such payment, or a status this code does not know. */
export type FetchedPayment =
  | { readonly kind: "payment"; readonly snapshot: PaymentSnapshot }
  | { readonly kind: "not_at_portone" }
  | { readonly kind: "unrecognized"; readonly status: string };

/** The re-fetch half of the sync; PortOne's other refusals and outages are thrown. */
export async function fetchPayment(
  deps: Pick<SyncDeps, "portone">,
  paymentId: string,
  source: SyncSource,
): Promise<FetchedPayment> {
  let parsed: ParsedPayment;
  try {
    parsed = parsePayment(await deps.portone.getPayment(paymentId));
  } catch (error) {
    if (error instanceof PortOneRefusal && error.type === "PAYMENT_NOT_FOUND") {
      return { kind: "not_at_portone" };
    }
    throw error;
  }
  if (parsed.kind === "unrecognized") {
    log("warn", "payment_status_unrecognized", { paymentId, status: parsed.status, source });
    return { kind: "unrecognized", status: parsed.status };
  }
  return { kind: "payment", snapshot: parsed };
}

export async function syncPayment(
  deps: SyncDeps,
  paymentId: string,
  source: SyncSource,
  options: { settlement?: CancellationSettlement } = {},
): Promise<SyncResult> {
  const fetched = await fetchPayment(deps, paymentId, source);
  if (fetched.kind === "payment") {
    return await applySnapshot(deps.sql, fetched.snapshot, source, {
      requireLiveChannel: deps.config.portone.requireLiveChannel,
      settlement: options.settlement,
    });
  }
  const payment = await readPaymentView(deps.sql, paymentId);
  if (!payment) return { outcome: "not_ours" };
  return fetched.kind === "not_at_portone"
    ? { outcome: "not_at_portone", payment }
    : { outcome: "unrecognized", payment, status: fetched.status };
}
