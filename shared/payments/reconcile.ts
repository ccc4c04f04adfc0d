/**
 * `reconcile`: heals drift between PortOne and our database, for a scheduler (pg_cron + pg_net, or any
 * cron) to call every few minutes. Webhooks can be lost for good (PortOne stops retrying after ~6 hours),
 * a browser may never call `confirm`, a caller may vanish mid-cancel, and staff refund in PortOne's
 * console; reconcile catches all of it with the same sync routine the other functions use:
 *
 * 1. Finishes cancellations left unsettled (see recoverAbandonedCancellations), so they block nothing.
 * 2. Follows PortOne's payment-event log from a persisted checkpoint: every payment paid or refunded since
 *    (console refunds included), however old the payment (see reconcile-portone.ts).
 * 3. Scans the payments created in the look-back window, resuming a window cut short by its limit.
 * 4. Re-fetches our payments still waiting on PortOne (PAY_PENDING, an unexpired virtual account, or an
 *    unsettled cancellation), least recently checked first, whenever they were created.
 *
 * Each payment is isolated: one that fails is listed in the report's `errors` with its id and the run
 * goes on. The report says which reader stopped short and where the next run resumes. It answers 503
 * (with the report) when PortOne could not be read to the end, so the scheduler retries; the progress made
 * is kept. Authentication: `Authorization: Bearer <RECONCILE_SECRET>` (verify_jwt is off for this function).
 */
import { timingSafeEqual } from "node:crypto";
import { abandonedCancellationCutoff, recoverAbandonedCancellations } from "./cancel.ts";
import { type ReconcileReport, ReconcileRequest } from "../contract/reconcile.ts";
import { AppError } from "../infra/errors.ts";
import { defineFunction, type EdgeFunction, json, readBodyText, validate } from "../infra/http.ts";
import { log } from "../infra/log.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { followPaymentEvents, scanPortOne } from "./reconcile-portone.ts";
import { newReport, recordError } from "./reconcile-report.ts";
import { syncPayment } from "./sync.ts";
import { afterReconcile } from "../operate/alerts.ts";

/** Constant-time check of the scheduler's secret. */
export function checkReconcileSecret(request: Request, secret: string | undefined): void {
  const header = request.headers.get("authorization") ?? "";
  const presented = new TextEncoder().encode(header.replace(/^Bearer\s+/i, ""));
  const expected = new TextEncoder().encode(secret ?? "");
  const ok = secret !== undefined && presented.length === expected.length &&
    timingSafeEqual(presented, expected);
  if (!ok) throw new AppError("unauthorized", "A valid reconcile secret is required");
}

/**
 * Re-fetches the payments still waiting on PortOne, least recently checked first. Every check moves
 * `checked_at`, whatever PortOne answered, so a payment that never changes (or always fails) goes to the
 * back and cannot starve the others: a payment waiting behind W others is checked within ⌈W / max⌉ runs.
 */
async function recheckWaiting(
  deps: AppDeps,
  input: ReconcileRequest,
  report: ReconcileReport,
  synced: Set<string>,
) {
  const graceMinutes = input.expiredAccountGraceMinutes;
  // PortOne answers only for the store we are configured with
  const storeId = deps.config.portone.storeId;
  const [expired] = await deps.sql<{ n: number }[]>`
    select count(*)::int as n from public.payments
    where store_id = ${storeId} and status = 'VIRTUAL_ACCOUNT_ISSUED'
      and virtual_account_expires_at <= now() - make_interval(mins => ${graceMinutes})`;
  report.waiting.skippedExpired = expired?.n ?? 0;
  if (input.maxWaiting === 0) return;
  const waiting = await deps.sql<{ id: string }[]>`
    select p.id from public.payments p
    where p.store_id = ${storeId}
      and (p.status = 'PAY_PENDING'
       or (p.status = 'VIRTUAL_ACCOUNT_ISSUED' and (p.virtual_account_expires_at is null
           or p.virtual_account_expires_at > now() - make_interval(mins => ${graceMinutes})))
       or exists (select 1 from public.payment_cancellations c where c.payment_id = p.id and c.status = 'REQUESTED'))
    order by coalesce(p.checked_at, p.created_at), p.id
    limit ${input.maxWaiting + 1}`;
  if (waiting.length > input.maxWaiting) {
    report.stoppedShort = { ...report.stoppedShort, waiting: { reason: "limit" } };
  }
  for (const { id } of waiting.slice(0, input.maxWaiting)) {
    report.waiting.checked++;
    try {
      // already synced by the event log or the scan of this run: that was its check
      if (!synced.has(id)) {
        const result = await syncPayment(deps, id, "reconcile");
        if (result.outcome === "applied") report.waiting.applied++;
        synced.add(id);
      }
    } catch (error) {
      report.waiting.failed++;
      recordError(report, "waiting", id, error);
    }
    await deps.sql`update public.payments set checked_at = now() where id = ${id}`;
  }
}

async function finishAbandonedCancellations(deps: AppDeps, report: ReconcileReport) {
  const abandonedBefore = abandonedCancellationCutoff(deps);
  const payments = await deps.sql<{ payment_id: string }[]>`
    select distinct c.payment_id from public.payment_cancellations c
    join public.payments p on p.id = c.payment_id
    where c.status = 'REQUESTED' and c.requested_at < ${abandonedBefore}
      and p.store_id = ${deps.config.portone.storeId}`;
  for (const { payment_id } of payments) {
    report.cancellations.abandonedPayments++;
    try {
      if (await recoverAbandonedCancellations(deps, payment_id)) report.cancellations.cleared++;
    } catch (error) {
      recordError(report, "cancellations", payment_id, error);
    }
  }
}

export async function reconcile(deps: AppDeps, input: ReconcileRequest): Promise<ReconcileReport> {
  const until = new Date();
  const from = new Date(until.getTime() - input.lookbackMinutes * 60_000);
  const report = newReport({ from: from.toISOString(), until: until.toISOString() });
  // payments synced in this run: one fresh look each is enough
  const synced = new Set<string>();
  await finishAbandonedCancellations(deps, report);
  await followPaymentEvents(deps, { max: input.maxEvents, startFrom: from }, report, synced);
  await scanPortOne(deps, { max: input.maxPayments, window: { from, until } }, report, synced);
  await recheckWaiting(deps, input, report, synced);
  const [failed] = await deps.sql<{ n: number }[]>`
    select count(*)::int as n from public.webhook_logs
    where status = 'failed' or (status = 'processing' and lease_expires_at < now())`;
  report.failedWebhooks = failed?.n ?? 0;
  await afterReconcile(deps, report);
  log(report.errors.length > 0 ? "warn" : "info", "reconcile_finished", { ...report });
  const stopped = report.stoppedShort;
  if (stopped?.events?.reason === "portone_unavailable" || stopped?.scan?.reason === "portone_unavailable") {
    throw new AppError(
      "portone_unavailable",
      "PortOne could not be read to the end; the next run resumes where this one stopped",
      { details: { report } },
    );
  }
  return report;
}

/** The `reconcile` function: POST (optional body: see ReconcileRequest). */
export function reconcileHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "reconcile",
    methods: ["POST"],
    auth: "none",
    handle: async ({ request }) => {
      checkReconcileSecret(request, deps.config.reconcileSecret);
      const text = await readBodyText(request);
      let body: unknown = {};
      if (text.trim() !== "") {
        try {
          body = JSON.parse(text);
        } catch (cause) {
          throw new AppError("invalid_json", "Request body is not valid JSON", { cause });
        }
      }
      return json(await reconcile(deps, validate(ReconcileRequest, body)));
    },
  });
}
