/**
 * `reconcile`: heals drift between PortOne and our database, for a scheduler (pg_cron + pg_net, or any
 * cron) to call every few minutes. Webhooks can be lost for good (PortOne stops retrying after ~6 hours),
 * a browser may never call `confirm`, and a caller may vanish mid-cancel; reconcile catches all three with
 * the same sync routine the other functions use:
 *
 * 1. PortOne's view: pages the payments created in the look-back window (cursor API) and applies each
 *    snapshot of a payment we prepared — monotonic, so a run never moves anything backwards.
 * 2. Our view: re-fetches our payments still waiting on PortOne (PAY_PENDING, VIRTUAL_ACCOUNT_ISSUED, or
 *    with an unsettled cancellation), whenever they were created.
 * 3. Finishes cancellations whose caller abandoned them (see recoverAbandonedCancellations).
 *
 * It answers a report of what it did; 503 when PortOne could not be paged, so the scheduler retries.
 * Authentication: `Authorization: Bearer <RECONCILE_SECRET>` (verify_jwt is off for this function).
 */
import { timingSafeEqual } from "node:crypto";
import { abandonedCancellationCutoff, recoverAbandonedCancellations } from "./cancel.ts";
import { type ReconcileReport, ReconcileRequest } from "../contract/reconcile.ts";
import { AppError } from "../infra/errors.ts";
import { defineFunction, type EdgeFunction, json, readBodyText, validate } from "../infra/http.ts";
import { log } from "../infra/log.ts";
import { parsePayment } from "../portone/snapshot.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { applySnapshot, syncPayment } from "./sync.ts";
import { afterReconcile } from "../operate/alerts.ts";

const pageSize = 100;

/** Constant-time check of the scheduler's secret. */
export function checkReconcileSecret(request: Request, secret: string | undefined): void {
  const header = request.headers.get("authorization") ?? "";
  const presented = new TextEncoder().encode(header.replace(/^Bearer\s+/i, ""));
  const expected = new TextEncoder().encode(secret ?? "");
  const ok = secret !== undefined && presented.length === expected.length &&
    timingSafeEqual(presented, expected);
  if (!ok) throw new AppError("unauthorized", "A valid reconcile secret is required");
}

async function scanPortOne(deps: AppDeps, from: Date, until: Date, max: number, report: ReconcileReport) {
  let cursor: string | undefined;
  while (report.portone.scanned < max) {
    const page = await deps.portone.getPaymentsByCursor({
      from: from.toISOString(),
      until: until.toISOString(),
      size: Math.min(pageSize, max - report.portone.scanned),
      ...(cursor ? { cursor } : {}),
    });
    const items = page.items ?? [];
    for (const item of items) {
      report.portone.scanned++;
      const parsed = parsePayment(item.payment);
      if (parsed.kind === "unrecognized") {
        report.portone.unrecognized++;
        continue;
      }
      if (parsed.storeId !== deps.config.portone.storeId) {
        report.portone.notOurs++;
        continue;
      }
      const result = await applySnapshot(deps.sql, parsed, "reconcile", {
        requireLiveChannel: deps.config.portone.requireLiveChannel,
      });
      if (result.outcome === "applied") report.portone.applied++;
      else if (result.outcome === "not_ours") report.portone.notOurs++;
      else report.portone.unchanged++;
    }
    const last = items.at(-1)?.cursor;
    if (items.length === 0 || !last || last === cursor) break;
    cursor = last;
  }
}

async function recheckWaiting(deps: AppDeps, max: number, report: ReconcileReport) {
  if (max === 0) return;
  const waiting = await deps.sql<{ id: string }[]>`
    select p.id from public.payments p
    where p.status in ('PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED')
       or exists (select 1 from public.payment_cancellations c where c.payment_id = p.id and c.status = 'REQUESTED')
    order by p.synced_at nulls first, p.id
    limit ${max}`;
  for (const { id } of waiting) {
    report.waiting.checked++;
    try {
      const result = await syncPayment(
        deps,
        id,
        "reconcile",
      );
      if (result.outcome === "applied") report.waiting.applied++;
    } catch (error) {
      // one payment PortOne cannot answer for must not stop the others
      report.waiting.failed++;
      log("warn", "reconcile_payment_failed", { paymentId: id, error });
    }
  }
}

async function finishAbandonedCancellations(deps: AppDeps, report: ReconcileReport) {
  const abandonedBefore = abandonedCancellationCutoff(deps);
  const payments = await deps.sql<{ payment_id: string }[]>`
    select distinct payment_id from public.payment_cancellations
    where status = 'REQUESTED' and portone_cancellation_id is null and requested_at < ${abandonedBefore}`;
  for (const { payment_id } of payments) {
    report.cancellations.abandonedPayments++;
    if (await recoverAbandonedCancellations(deps, payment_id)) report.cancellations.cleared++;
  }
}

export async function reconcile(deps: AppDeps, input: ReconcileRequest): Promise<ReconcileReport> {
  const until = new Date();
  const from = new Date(until.getTime() - input.lookbackMinutes * 60_000);
  const report: ReconcileReport = {
    window: { from: from.toISOString(), until: until.toISOString() },
    portone: { scanned: 0, applied: 0, unchanged: 0, notOurs: 0, unrecognized: 0 },
    waiting: { checked: 0, applied: 0, failed: 0 },
    cancellations: { abandonedPayments: 0, cleared: 0 },
    failedWebhooks: 0,
  };
  await scanPortOne(deps, from, until, input.maxPayments, report);
  await recheckWaiting(deps, input.maxWaiting, report);
  await finishAbandonedCancellations(deps, report);
  const [failed] = await deps.sql<{ n: number }[]>`
    select count(*)::int as n from public.webhook_logs
    where status = 'failed' or (status = 'processing' and lease_expires_at < now())`;
  report.failedWebhooks = failed?.n ?? 0;
  await afterReconcile(deps, report);
  log("info", "reconcile_finished", { ...report });
  return report;
}

/** The `reconcile` function: POST (optional body { lookbackMinutes?, maxPayments?, maxWaiting? }). */
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
