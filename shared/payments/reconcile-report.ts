/**
 * What one `reconcile` run did, and how a failure of one payment is kept from stopping the others: it is
 * written into the report with the payment's id, and the run goes on.
 */
import { isTransientDatabaseError } from "../infra/db.ts";
import { AppError } from "../infra/errors.ts";
import { log } from "../infra/log.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import type { ReconcileError, ReconcileReport, ReconcileStage, StoppedShort } from "../contract/reconcile.ts";

export type { ReconcileError, ReconcileReport, ReconcileStage, StoppedShort };

export function newReport(window: { from: string; until: string }): ReconcileReport {
  return {
    window,
    events: { read: 0, applied: 0, unchanged: 0, notOurs: 0 },
    portone: { scanned: 0, applied: 0, unchanged: 0, notOurs: 0, unrecognized: 0 },
    waiting: { checked: 0, applied: 0, failed: 0, skippedExpired: 0 },
    cancellations: { abandonedPayments: 0, cleared: 0 },
    errors: [],
    stoppedShort: null,
    failedWebhooks: 0,
  };
}

export function markStoppedShort(
  report: ReconcileReport,
  reader: "events" | "scan",
  stopped: StoppedShort,
): void {
  report.stoppedShort = { ...report.stoppedShort, [reader]: stopped };
}

/** PortOne or the database is briefly away: retrying later will work, skipping would lose something. */
export function isOutage(error: unknown): boolean {
  return (error instanceof AppError && error.status === 503) || isTransientDatabaseError(error);
}

/**
 * Records one payment's failure. The database being unreachable is not one payment's problem: it ends the
 * run (503), since nothing else can be done either.
 */
export function recordError(
  report: ReconcileReport,
  stage: ReconcileStage,
  paymentId: string | null,
  error: unknown,
): void {
  if (isTransientDatabaseError(error)) throw error;
  const code = error instanceof AppError
    ? error.code
    : error instanceof PortOneRefusal
    ? `portone_${error.type.toLowerCase()}`
    : typeof (error as { code?: unknown })?.code === "string"
    ? `database_${(error as { code: string }).code}`
    : "internal";
  const message = error instanceof AppError || error instanceof PortOneRefusal
    ? error.message
    : "could not be applied; see the log line reconcile_payment_failed";
  report.errors.push({ paymentId, stage, code, message });
  log("warn", "reconcile_payment_failed", { paymentId, stage, error });
}
