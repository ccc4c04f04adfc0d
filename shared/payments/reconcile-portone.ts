/**
 * reconcile's two readers of PortOne, each resuming where the previous run stopped (progress is kept in
 * `reconcile_progress`, per store):
 *
 * - the payment-event log (`GET /payment-events-by-cursor`): every payment, cancellation and console refund
 *   since the checkpoint, whenever the payment was created; each event's payment is re-fetched and synced;
 * - the look-back scan (`GET /payments-by-cursor`): every payment created in the window, applied as listed.
 *   A window too busy for one run's limit is finished by the next runs from the persisted cursor, before a
 *   new window starts, so no part of it is skipped however busy the store is.
 *
 * A page PortOne cannot serve, or a payment it cannot answer for during an outage, stops that reader where
 * it was (nothing after it is skipped); any other failure of one payment is reported and passed.
 */
import type { Sql } from "../infra/db.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import { parsePayment } from "../portone/snapshot.ts";
import { isOutage, markStoppedShort, type ReconcileReport, recordError } from "./reconcile-report.ts";
import { applySnapshot, syncPayment, type SyncResult } from "./sync.ts";

const pageSize = 100;

type Reader = "payment_events" | "payments_scan";

interface Progress {
  cursor: string | null;
  window_from: Date;
  window_until: Date | null;
}

async function readProgress(sql: Sql, storeId: string, reader: Reader): Promise<Progress | undefined> {
  const [row] = await sql<Progress[]>`
    select cursor, window_from, window_until from public.reconcile_progress
    where store_id = ${storeId} and reader = ${reader}`;
  return row;
}

async function saveProgress(sql: Sql, storeId: string, reader: Reader, progress: Progress): Promise<void> {
  await sql`
    insert into public.reconcile_progress (store_id, reader, cursor, window_from, window_until)
    values (${storeId}, ${reader}, ${progress.cursor}, ${progress.window_from}, ${progress.window_until})
    on conflict (store_id, reader) do update set
      cursor = excluded.cursor, window_from = excluded.window_from, window_until = excluded.window_until,
      updated_at = now()`;
}

async function clearProgress(sql: Sql, storeId: string, reader: Reader): Promise<void> {
  await sql`delete from public.reconcile_progress where store_id = ${storeId} and reader = ${reader}`;
}

/** A resumed cursor PortOne no longer accepts is dropped (the reader starts over), never retried forever. */
function refusedCursor(error: unknown, cursor: string | null): boolean {
  return cursor !== null && error instanceof PortOneRefusal && error.type === "INVALID_REQUEST";
}

function count(into: { applied: number; unchanged: number; notOurs: number }, result: SyncResult): void {
  if (result.outcome === "applied") into.applied++;
  else if (result.outcome === "not_ours") into.notOurs++;
  else into.unchanged++;
}

/** Follows PortOne's payment-event log from the checkpoint; the first run starts `lookback` ago. */
export async function followPaymentEvents(
  deps: AppDeps,
  options: { max: number; startFrom: Date },
  report: ReconcileReport,
  synced: Set<string>,
): Promise<void> {
  if (options.max === 0) return;
  const { sql } = deps;
  const storeId = deps.config.portone.storeId;
  const progress = await readProgress(sql, storeId, "payment_events") ??
    { cursor: null, window_from: options.startFrom, window_until: null };
  let cursor = progress.cursor;
  const save = () => saveProgress(sql, storeId, "payment_events", { ...progress, cursor });
  let read = 0;
  while (read < options.max) {
    const size = Math.min(pageSize, options.max - read);
    let items;
    try {
      const page = await deps.portone.getPaymentEventsByCursor({
        from: progress.window_from.toISOString(),
        size,
        ...(cursor !== null ? { cursor } : {}),
      });
      items = page.items ?? [];
    } catch (error) {
      if (refusedCursor(error, cursor)) {
        await clearProgress(sql, storeId, "payment_events");
        recordError(report, "events", null, error);
        markStoppedShort(report, "events", { reason: "cursor_refused", resumeCursor: null });
        return;
      }
      if (!isOutage(error)) throw error;
      markStoppedShort(report, "events", { reason: "portone_unavailable", resumeCursor: cursor });
      return;
    }
    for (const item of items) {
      const paymentId = (item.paymentEvent as { paymentId?: unknown }).paymentId;
      if (typeof paymentId === "string" && !synced.has(paymentId)) {
        try {
          const result = await syncPayment(deps, paymentId, "reconcile");
          count(report.events, result);
          if (result.outcome !== "not_ours") synced.add(paymentId);
        } catch (error) {
          if (isOutage(error)) {
            // keep this event for the next run: skipping it could lose the only trace of a refund
            await save();
            markStoppedShort(report, "events", { reason: "portone_unavailable", resumeCursor: cursor });
            return;
          }
          recordError(report, "events", paymentId, error);
        }
      }
      read++;
      report.events.read++;
      cursor = item.cursor;
    }
    await save();
    if (items.length < size) return; // caught up with PortOne
  }
  markStoppedShort(report, "events", { reason: "limit", resumeCursor: cursor });
}

/**
 * Scans the payments created in the window. A window an earlier run could not finish is finished first,
 * then, with budget left, the run's own window is scanned too.
 */
export async function scanPortOne(
  deps: AppDeps,
  options: { max: number; window: { from: Date; until: Date } },
  report: ReconcileReport,
  synced: Set<string>,
): Promise<void> {
  const saved = await readProgress(deps.sql, deps.config.portone.storeId, "payments_scan");
  const fresh: Progress = {
    cursor: null,
    window_from: options.window.from,
    window_until: options.window.until,
  };
  const finished = await scanWindow(deps, saved ?? fresh, options, report, synced);
  if (finished && saved && report.portone.scanned < options.max) {
    await scanWindow(deps, fresh, options, report, synced);
  }
}

/** Returns whether the window was read to its end. */
async function scanWindow(
  deps: AppDeps,
  progress: Progress,
  options: { max: number; window: { from: Date; until: Date } },
  report: ReconcileReport,
  synced: Set<string>,
): Promise<boolean> {
  const { sql } = deps;
  const storeId = deps.config.portone.storeId;
  const window = {
    from: progress.window_from.toISOString(),
    until: (progress.window_until ?? options.window.until).toISOString(),
  };
  report.window = window;
  let cursor = progress.cursor;
  const stop = async (reason: "limit" | "portone_unavailable") => {
    await saveProgress(sql, storeId, "payments_scan", { ...progress, cursor });
    markStoppedShort(report, "scan", { reason, resumeCursor: cursor, window });
    return false;
  };
  while (report.portone.scanned < options.max) {
    const size = Math.min(pageSize, options.max - report.portone.scanned);
    let items;
    try {
      const page = await deps.portone.getPaymentsByCursor({
        ...window,
        size,
        ...(cursor !== null ? { cursor } : {}),
      });
      items = page.items ?? [];
    } catch (error) {
      if (refusedCursor(error, cursor)) {
        await clearProgress(sql, storeId, "payments_scan");
        recordError(report, "scan", null, error);
        markStoppedShort(report, "scan", { reason: "cursor_refused", resumeCursor: null, window });
        return false;
      }
      if (!isOutage(error)) throw error;
      return await stop("portone_unavailable");
    }
    for (const item of items) {
      report.portone.scanned++;
      cursor = item.cursor;
      let parsed;
      try {
        parsed = parsePayment(item.payment);
      } catch (error) {
        recordError(report, "scan", (item.payment as { id?: string }).id ?? null, error);
        continue;
      }
      if (parsed.kind === "unrecognized") {
        report.portone.unrecognized++;
        continue;
      }
      if (parsed.storeId !== storeId) {
        report.portone.notOurs++;
        continue;
      }
      if (synced.has(parsed.id)) {
        report.portone.unchanged++;
        continue;
      }
      try {
        const result = await applySnapshot(sql, parsed, "reconcile", {
          requireLiveChannel: deps.config.portone.requireLiveChannel,
        });
        count(report.portone, result);
        if (result.outcome !== "not_ours") synced.add(parsed.id);
      } catch (error) {
        recordError(report, "scan", parsed.id, error);
      }
    }
    if (items.length < size) {
      await clearProgress(sql, storeId, "payments_scan");
      return true;
    }
  }
  return await stop("limit");
}
