/**
 * "What happened to payment X?" in one answer: every audit event, webhook delivery, cancellation
 * (requested and settled), idempotent request and mismatch of the payment, in time order, and PortOne's
 * current view of it beside ours with the differences marked. For admins only (the caller checks); it
 * reads with the service connection, so no table is opened to API roles for it.
 *
 * Idempotent requests are the replies kept for 24 hours (idempotency_keys): those whose answer names
 * the payment, and cancel requests matched through the PortOne key a cancellation derives from the
 * caller's Idempotency-Key (shared/payments/cancel.ts). A refusal that named no payment is not linked.
 */
import type { Sql } from "../infra/db.ts";
import type { Narrowed, Row, SqlRow } from "../infra/rows.ts";
import { log } from "../infra/log.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import type { PortOneGateway } from "../portone/gateway.ts";
import { parsePayment, type PaymentSnapshot } from "../portone/snapshot.ts";

export type TimelineEntry =
  | {
    readonly at: string;
    readonly type: "audit" | "mismatch";
    readonly eventId: number;
    readonly source: string;
    readonly kind: string;
    readonly fromStatus: string | null;
    readonly toStatus: string | null;
    readonly detail: unknown;
    readonly webhookId: string | null;
  }
  | {
    readonly at: string;
    readonly type: "webhook";
    readonly webhookId: string;
    readonly eventType: string | null;
    readonly attempts: number;
    readonly outcome: string;
    readonly lastError: string | null;
    readonly processingMs: number | null;
    readonly lastReceivedAt: string;
    readonly payloadConflict: boolean;
  }
  | {
    readonly at: string;
    readonly type: "cancellation_requested";
    readonly cancellationId: string;
    readonly amount: number;
    readonly taxFreeAmount: number;
    readonly reason: string;
    readonly requester: string;
    readonly requestedBy: string | null;
    /** Bank, last four digits and the holder's initial only, as stored. */
    readonly refundAccount: unknown;
  }
  | {
    readonly at: string;
    readonly type: "cancellation_settled";
    readonly cancellationId: string;
    readonly status: string;
    readonly amount: number;
    readonly portoneCancellationId: string | null;
    readonly failureReason: string | null;
  }
  | {
    readonly at: string;
    readonly type: "idempotent_request";
    readonly route: string;
    readonly userId: string;
    readonly idempotencyKey: string;
    readonly status: string;
    readonly responseStatus: number | null;
    readonly completedAt: string | null;
  };

/** Our payment, in the shape compared with PortOne's. */
export interface PaymentState {
  readonly status: string;
  readonly storeId: string;
  readonly orderName: string;
  readonly currency: string;
  readonly totalAmount: number;
  readonly taxFreeAmount: number;
  readonly paidAmount: number;
  readonly cancelledAmount: number;
  readonly statusChangedAt: string | null;
  /** PortOne cancellation id → status, for the cancellations PortOne knows of. */
  readonly cancellations: Readonly<Record<string, string>>;
}

export interface Difference {
  readonly field: string;
  readonly ours: unknown;
  readonly portone: unknown;
}

export interface Timeline {
  readonly payment: {
    readonly id: string;
    readonly orderId: string;
    readonly orderStatus: string;
    readonly userId: string;
    readonly methodType: string | null;
    readonly pgProvider: string | null;
    readonly channelType: string | null;
    readonly mismatchReason: string | null;
    readonly cancellableAmount: number;
    readonly cancelReservedAmount: number;
    readonly createdAt: string;
    readonly syncedAt: string | null;
  };
  readonly ours: PaymentState;
  /** PortOne's current view; `unavailable` when PortOne could not be asked (the rest still answers). */
  readonly portone:
    | { readonly found: true; readonly state: PaymentState }
    | { readonly found: false }
    | { readonly unavailable: true; readonly status: string | null };
  readonly differences: readonly Difference[];
  readonly entries: readonly TimelineEntry[];
}

const iso = (value: Date | null) => value?.toISOString() ?? null;

/** Same instant: the order in which they happen within one request. */
const typeRank: Record<TimelineEntry["type"], number> = {
  idempotent_request: 0,
  cancellation_requested: 1,
  webhook: 2,
  cancellation_settled: 3,
  audit: 4,
  mismatch: 4,
};

/** The payment with its order's status and name (joined). */
type PaymentRow =
  & Narrowed<
    Pick<
      SqlRow<"payments", "status_changed_at" | "created_at" | "synced_at">,
      | "id"
      | "order_id"
      | "user_id"
      | "store_id"
      | "status"
      | "currency"
      | "total_amount"
      | "tax_free_amount"
      | "paid_amount"
      | "cancelled_amount"
      | "cancellable_amount"
      | "cancel_reserved_amount"
      | "method_type"
      | "pg_provider"
      | "channel_type"
      | "mismatch_reason"
      | "status_changed_at"
      | "created_at"
      | "synced_at"
    >,
    // generated from two not-null columns, so never null
    { cancellable_amount: number }
  >
  & { order_status: Row<"orders">["status"]; order_name: Row<"orders">["order_name"] };

function portoneState(snapshot: PaymentSnapshot): PaymentState {
  return {
    status: snapshot.status,
    storeId: snapshot.storeId,
    orderName: snapshot.orderName,
    currency: snapshot.currency,
    totalAmount: snapshot.totalAmount,
    taxFreeAmount: snapshot.taxFreeAmount,
    paidAmount: snapshot.paidAmount,
    cancelledAmount: snapshot.cancelledAmount,
    statusChangedAt: new Date(snapshot.statusChangedAt).toISOString(),
    cancellations: Object.fromEntries(snapshot.cancellations.map((c) => [c.portoneId, c.status])),
  };
}

/** Field-by-field differences; cancellations compared by PortOne's id. */
export function compareStates(ours: PaymentState, portone: PaymentState): Difference[] {
  const differences: Difference[] = [];
  const scalar = [
    "status",
    "storeId",
    "orderName",
    "currency",
    "totalAmount",
    "taxFreeAmount",
    "paidAmount",
    "cancelledAmount",
    "statusChangedAt",
  ] as const;
  for (const field of scalar) {
    if (ours[field] !== portone[field]) {
      differences.push({ field, ours: ours[field], portone: portone[field] });
    }
  }
  const ids = new Set([...Object.keys(ours.cancellations), ...Object.keys(portone.cancellations)]);
  for (const id of [...ids].sort()) {
    const mine = ours.cancellations[id] ?? null;
    const theirs = portone.cancellations[id] ?? null;
    if (mine !== theirs) differences.push({ field: `cancellations.${id}`, ours: mine, portone: theirs });
  }
  return differences;
}

async function readEntries(sql: Sql, paymentId: string): Promise<TimelineEntry[]> {
  const [events, webhooks, cancellations, requests] = await Promise.all([
    sql<
      {
        id: number;
        source: string;
        kind: string;
        from_status: string | null;
        to_status: string | null;
        detail: unknown;
        webhook_id: string | null;
        created_at: Date;
      }[]
    >`
      select id, source, kind, from_status, to_status, detail, webhook_id, created_at
      from public.payment_events where payment_id = ${paymentId} order by id`,
    sql<
      {
        webhook_id: string;
        event_type: string | null;
        attempts: number;
        status: string;
        last_error: string | null;
        processing_ms: number | null;
        received_at: Date;
        last_received_at: Date;
        payload_conflict: boolean;
      }[]
    >`
      select webhook_id, event_type, attempts, status, last_error, processing_ms, received_at, last_received_at,
             payload_conflict
      from public.webhook_logs where payment_id = ${paymentId} order by received_at, id`,
    sql<
      {
        id: string;
        status: string;
        amount: number;
        tax_free_amount: number;
        reason: string;
        requester: string;
        requested_by: string | null;
        portone_cancellation_id: string | null;
        refund_account_masked: unknown;
        failure_reason: string | null;
        requested_at: Date;
        settled_at: Date | null;
      }[]
    >`
      select id, status, amount, tax_free_amount, reason, requester, requested_by, portone_cancellation_id,
             refund_account_masked, failure_reason, requested_at, settled_at
      from public.payment_cancellations where payment_id = ${paymentId} order by requested_at, id`,
    sql<
      {
        route: string;
        user_id: string;
        key: string;
        status: string;
        response_status: number | null;
        created_at: Date;
        completed_at: Date | null;
      }[]
    >`
      select k.route, k.user_id, k.key, k.status, k.response_status, k.created_at, k.completed_at
      from public.idempotency_keys k
      where k.response_body ->> 'paymentId' = ${paymentId}
         or (k.route = 'cancel' and exists (
               select 1 from public.payment_cancellations c
               where c.payment_id = ${paymentId}
                 and c.idempotency_key = 'cancel-' || left(encode(sha256(convert_to(k.user_id::text || ':' || k.key,
                   'UTF8')), 'hex'), 48)))
      order by k.created_at, k.id`,
  ]);

  const entries: TimelineEntry[] = [];
  for (const e of events) {
    entries.push({
      at: e.created_at.toISOString(),
      type: e.kind === "mismatch" ? "mismatch" : "audit",
      eventId: e.id,
      source: e.source,
      kind: e.kind,
      fromStatus: e.from_status,
      toStatus: e.to_status,
      detail: e.detail,
      webhookId: e.webhook_id,
    });
  }
  for (const w of webhooks) {
    entries.push({
      at: w.received_at.toISOString(),
      type: "webhook",
      webhookId: w.webhook_id,
      eventType: w.event_type,
      attempts: w.attempts,
      outcome: w.status,
      lastError: w.last_error,
      processingMs: w.processing_ms,
      lastReceivedAt: w.last_received_at.toISOString(),
      payloadConflict: w.payload_conflict,
    });
  }
  for (const c of cancellations) {
    entries.push({
      at: c.requested_at.toISOString(),
      type: "cancellation_requested",
      cancellationId: c.id,
      amount: c.amount,
      taxFreeAmount: c.tax_free_amount,
      reason: c.reason,
      requester: c.requester,
      requestedBy: c.requested_by,
      refundAccount: c.refund_account_masked,
    });
    if (c.settled_at) {
      entries.push({
        at: c.settled_at.toISOString(),
        type: "cancellation_settled",
        cancellationId: c.id,
        status: c.status,
        amount: c.amount,
        portoneCancellationId: c.portone_cancellation_id,
        failureReason: c.failure_reason,
      });
    }
  }
  for (const r of requests) {
    entries.push({
      at: r.created_at.toISOString(),
      type: "idempotent_request",
      route: r.route,
      userId: r.user_id,
      idempotencyKey: r.key,
      status: r.status,
      responseStatus: r.response_status,
      completedAt: iso(r.completed_at),
    });
  }
  // a stable sort: rows of one kind keep their own order (event ids, request order) within an instant
  return entries
    .map((entry, index) => ({ entry, index }))
    .sort((a, b) =>
      a.entry.at.localeCompare(b.entry.at) || typeRank[a.entry.type] - typeRank[b.entry.type] ||
      a.index - b.index
    )
    .map(({ entry }) => entry);
}

async function askPortOne(
  portone: Pick<PortOneGateway, "getPayment">,
  paymentId: string,
): Promise<Timeline["portone"]> {
  try {
    const parsed = parsePayment(await portone.getPayment(paymentId));
    if (parsed.kind === "unrecognized") return { unavailable: true, status: parsed.status };
    return { found: true, state: portoneState(parsed) };
  } catch (error) {
    if (error instanceof PortOneRefusal && error.type === "PAYMENT_NOT_FOUND") return { found: false };
    log("warn", "timeline_portone_unavailable", { paymentId, error });
    return { unavailable: true, status: null };
  }
}

/** The timeline of one payment, or null when we have no such payment. */
export async function paymentTimeline(
  deps: { readonly sql: Sql; readonly portone: Pick<PortOneGateway, "getPayment"> },
  paymentId: string,
): Promise<Timeline | null> {
  const [row] = await deps.sql<PaymentRow[]>`
    select p.id, p.order_id, o.status as order_status, o.order_name, p.user_id, p.store_id, p.status, p.currency,
           p.total_amount, p.tax_free_amount, p.paid_amount, p.cancelled_amount, p.cancellable_amount,
           p.cancel_reserved_amount, p.method_type, p.pg_provider, p.channel_type, p.mismatch_reason,
           p.status_changed_at, p.created_at, p.synced_at
    from public.payments p join public.orders o on o.id = p.order_id
    where p.id = ${paymentId}`;
  if (!row) return null;
  const [entries, portone, ourCancellations] = await Promise.all([
    readEntries(deps.sql, paymentId),
    askPortOne(deps.portone, paymentId),
    deps.sql<{ portone_cancellation_id: string; status: string }[]>`
      select portone_cancellation_id, status from public.payment_cancellations
      where payment_id = ${paymentId} and portone_cancellation_id is not null`,
  ]);
  const ours: PaymentState = {
    status: row.status,
    storeId: row.store_id,
    orderName: row.order_name,
    currency: row.currency,
    totalAmount: row.total_amount,
    taxFreeAmount: row.tax_free_amount,
    paidAmount: row.paid_amount,
    cancelledAmount: row.cancelled_amount,
    statusChangedAt: iso(row.status_changed_at),
    cancellations: Object.fromEntries(ourCancellations.map((c) => [c.portone_cancellation_id, c.status])),
  };
  return {
    payment: {
      id: row.id,
      orderId: row.order_id,
      orderStatus: row.order_status,
      userId: row.user_id,
      methodType: row.method_type,
      pgProvider: row.pg_provider,
      channelType: row.channel_type,
      mismatchReason: row.mismatch_reason,
      cancellableAmount: row.cancellable_amount,
      cancelReservedAmount: row.cancel_reserved_amount,
      createdAt: row.created_at.toISOString(),
      syncedAt: iso(row.synced_at),
    },
    ours,
    portone,
    differences: "state" in portone ? compareStates(ours, portone.state) : [],
    entries,
  };
}
