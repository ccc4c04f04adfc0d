/**
 * What one `reconcile` run did, and how a failure of one payment is kept from stopping the others: it is
 * written into the report with the payment's id, and the run goes on.
 */
import { isTransientDatabaseError } from "../infra/db.ts";
import { AppError } from "../infra/errors.ts";
import { log } from "../infra/log.ts";
import { PortOneRefusal } from "../portone/gateway.ts";

export type ReconcileStage = "cancellations" | "events" | "scan" | "waiting";

/** Where a reader stopped before the end of its work, and where the next run resumes. */
export interface StoppedShort {
  readonly reason: "limit" | "portone_unavailable" | "cursor_refused";
  /** PortOne's cursor of the last item handled (null: from the start of the window). */
  readonly resumeCursor: string | null;
  readonly window?: { readonly from: string; readonly until: string | null };
}

export interface ReconcileError {
  readonly paymentId: string | null;
  readonly stage: ReconcileStage;
  readonly code: string;
  readonly message: string;
}

export interface ReconcileReport {
  /** The look-back window scanned (a resumed scan keeps the window it started with). */
  window: { from: string; until: string };
  events: { read: number; applied: number; unchanged: number; notOurs: number };
  portone: { scanned: number; applied: number; unchanged: number; notOurs: number; unrecognized: number };
  waiting: { checked: number; applied: number; failed: number; skippedExpired: number };
  cancellations: { abandonedPayments: number; cleared: number };
  /** Every payment (or page) that failed in this run; the run went on without it. */
  errors: ReconcileError[];
  /** Set per reader that stopped before the end; the next run resumes there. Null when nothing was cut short. */
  stoppedShort: { events?: StoppedShort; scan?: StoppedShort; waiting?: { reason: "limit" } } | null;
  /** Webhook deliveries that failed and were not retried to success (for alerting). */
  failedWebhooks: number;
}

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
