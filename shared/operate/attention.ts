/**
 * The one definition of "needs attention": what an operator must look at, read by the admin health view
 * and by the alerts reconcile sends. Each item has a stable `key` (one problem, one key, for as long as the
 * problem lasts), so an alert is sent once per problem rather than once per run.
 *
 * - webhook_failed: a verified delivery whose last processing failed (PortOne retries; we could not apply it)
 * - webhook_stuck: a delivery whose processing lease ran out without an outcome (the isolate died)
 * - webhook_unsupported: a delivery we could not read (see `unsupportedWebhookStatuses`)
 * - payment_mismatch: PortOne's payment disagrees with our order and money is still held
 * - cancellation_stuck: a refund unsettled past the abandonment cutoff (shared/payments/cancel.ts)
 * - payment_waiting: a payment still waiting on PortOne past its window
 * - drift_fixed: a change reconcile had to apply in its last run (a webhook never brought it)
 */
import type { Sql } from "../infra/db.ts";

export const attentionKinds = [
  "webhook_failed",
  "webhook_stuck",
  "webhook_unsupported",
  "payment_mismatch",
  "cancellation_stuck",
  "payment_waiting",
  "drift_fixed",
] as const;
export type AttentionKind = (typeof attentionKinds)[number];

/**
 * webhook_logs statuses of deliveries we could verify but not read. The INPUTS work adds the statuses
 * `malformed` and `unsupported_format` to webhook_logs; they are listed already (a filter on a status
 * the table cannot hold yet matches nothing), so a further status is a one-line change here.
 */
export const unsupportedWebhookStatuses = ["malformed", "unsupported_format"] as const;

/** A PAY_PENDING payment (e.g. awaiting a bank transfer's confirmation) should have moved by then. */
export const payPendingWindowMinutes = 60;
/** PortOne closes an expired virtual account on its own; after this grace it is ours to look at. */
export const virtualAccountGraceMinutes = 60;

export interface AttentionItem {
  readonly key: string;
  readonly kind: AttentionKind;
  readonly paymentId: string | null;
  /** When the problem started (or was last seen, for deliveries). */
  readonly since: string;
  /** One line for humans: never secrets, card or account numbers. */
  readonly summary: string;
}

interface Row {
  kind: AttentionKind;
  ref: string;
  payment_id: string | null;
  since: Date;
  summary: string;
}

/**
 * Everything that needs attention now for the deployment's store (PORTONE_STORE_ID: a deployment answers
 * for its own store's payments and deliveries; a delivery naming no store counts too). `abandonedBefore` is
 * abandonedCancellationCutoff(deps); `limit` bounds each kind, so a flood cannot make a view unbounded.
 */
export async function needsAttention(
  sql: Sql,
  options: { storeId: string; abandonedBefore: Date; limit?: number },
): Promise<AttentionItem[]> {
  const limit = options.limit ?? 200;
  const store = options.storeId;
  const rows = await sql<Row[]>`
    (select 'webhook_failed' as kind, w.webhook_id as ref, w.payment_id, w.last_received_at as since,
            concat('webhook ', coalesce(w.event_type, '?'), ' failed ', w.attempts, ' time(s): ',
                   coalesce(w.last_error, 'error')) as summary
       from public.webhook_logs w
      where w.status = 'failed' and coalesce(w.store_id, ${store}) = ${store}
      order by w.last_received_at limit ${limit})
    union all
    (select 'webhook_stuck', w.webhook_id, w.payment_id, w.lease_expires_at,
            concat('webhook ', coalesce(w.event_type, '?'), ' stuck in ', w.status, ' since its lease ran out')
       from public.webhook_logs w
      where w.status in ('received', 'processing') and w.lease_expires_at < now()
        and coalesce(w.store_id, ${store}) = ${store}
      order by w.lease_expires_at limit ${limit})
    union all
    (select 'webhook_unsupported', w.webhook_id, w.payment_id, w.received_at,
            concat('webhook ', coalesce(w.event_type, '?'), ' could not be read (', w.status, ')')
       from public.webhook_logs w
      where w.status::text in ${sql(unsupportedWebhookStatuses)} and coalesce(w.store_id, ${store}) = ${store}
      order by w.received_at limit ${limit})
    union all
    (select 'payment_mismatch', p.id, p.id, coalesce(p.synced_at, p.updated_at),
            concat('payment ', p.status, ' disagrees with its order (', p.mismatch_reason, '); ',
                   p.cancellable_amount, ' ', p.currency, ' still held')
       from public.payments p
      where p.store_id = ${store} and p.mismatch_reason is not null
        and (p.cancellable_amount > 0 or p.status in ('PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED'))
      order by p.id limit ${limit})
    union all
    (select 'cancellation_stuck', c.id::text, c.payment_id, c.requested_at,
            concat('refund of ', c.amount, ' requested by ', lower(c.requester), ' still unsettled')
       from public.payment_cancellations c join public.payments p on p.id = c.payment_id
      where p.store_id = ${store} and c.status = 'REQUESTED' and c.requested_at < ${options.abandonedBefore}
      order by c.requested_at limit ${limit})
    union all
    (select 'payment_waiting', p.id || ':' || p.status, p.id, p.requested_at,
            concat('payment ', p.status, ' still waiting on PortOne')
       from public.payments p
      where p.store_id = ${store} and ((p.status = 'PAY_PENDING'
             and p.requested_at < now() - make_interval(mins => ${payPendingWindowMinutes}))
         or (p.status = 'VIRTUAL_ACCOUNT_ISSUED'
             and p.virtual_account_expires_at < now() - make_interval(mins => ${virtualAccountGraceMinutes})))
      order by p.requested_at limit ${limit})
    union all
    (select 'drift_fixed', e.id::text, e.payment_id, e.created_at,
            concat('reconcile applied ', coalesce(e.from_status, '?'), ' → ', coalesce(e.to_status, '?'),
                   case when e.kind = 'mismatch' then ' (mismatch)' else '' end, ' that no webhook brought')
       from public.payment_events e
       join public.payments p on p.id = e.payment_id and p.store_id = ${store}
       join lateral (select r.started_at, r.finished_at from public.reconcile_runs r where r.store_id = ${store}
                     order by r.started_at desc limit 1) last_run on true
      where e.source = 'reconcile' and e.created_at between last_run.started_at and last_run.finished_at
      order by e.id limit ${limit})`;
  return rows
    .map((row) => ({
      key: `${row.kind}:${row.ref}`,
      kind: row.kind,
      paymentId: row.payment_id,
      since: row.since.toISOString(),
      summary: row.summary,
    }))
    .sort((a, b) => a.since.localeCompare(b.since) || a.key.localeCompare(b.key));
}

/** Counts per kind, every kind present (0 when none), for a summary line or a dashboard. */
export function countByKind(items: readonly AttentionItem[]): Record<AttentionKind, number> {
  const counts = Object.fromEntries(attentionKinds.map((kind) => [kind, 0])) as Record<AttentionKind, number>;
  for (const item of items) counts[item.kind]++;
  return counts;
}
