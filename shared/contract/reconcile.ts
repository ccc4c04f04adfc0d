/**
 * The `reconcile` function's contract: POST { lookbackMinutes?, maxPayments?, maxEvents?, maxWaiting?,
 * expiredAccountGraceMinutes? } → a report; 503 (with the report) when PortOne could not be read to the end.
 */
import { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import { timestamp, wrapperErrors } from "./common.ts";

export const ReconcileRequest = z.strictObject({
  /** How far back PortOne's payments are scanned (by creation time); also where the event log starts. */
  lookbackMinutes: z.number().int().min(1).max(90 * 24 * 60).default(3 * 24 * 60),
  /** An upper bound on the PortOne payments one run scans; the rest of the window waits for the next run. */
  maxPayments: z.number().int().min(1).max(10_000).default(2_000),
  /** An upper bound on the PortOne payment events one run reads (0: do not follow the event log). */
  maxEvents: z.number().int().min(0).max(10_000).default(2_000),
  /** An upper bound on our own waiting payments one run re-fetches. */
  maxWaiting: z.number().int().min(0).max(1_000).default(200),
  /** How long after its deadline an unpaid virtual account is still re-checked (the event log covers later). */
  expiredAccountGraceMinutes: z.number().int().min(0).max(90 * 24 * 60).default(24 * 60),
});
export type ReconcileRequest = z.infer<typeof ReconcileRequest>;

const count = z.number().int().min(0);

/** Where a reader stopped before the end of its work, and where the next run resumes. */
export const StoppedShort = z.strictObject({
  reason: z.enum(["limit", "portone_unavailable", "cursor_refused"]),
  /** PortOne's cursor of the last item handled (null: from the start of the window). */
  resumeCursor: z.string().nullable(),
  window: z.strictObject({ from: timestamp, until: timestamp.nullable() }).optional(),
});
export type StoppedShort = z.infer<typeof StoppedShort>;

export const reconcileStages = ["cancellations", "events", "scan", "waiting"] as const;
export type ReconcileStage = (typeof reconcileStages)[number];

/** One payment (or page) that failed in a run; the run went on without it. */
export const ReconcileError = z.strictObject({
  paymentId: z.string().nullable(),
  stage: z.enum(reconcileStages),
  code: z.string(),
  message: z.string(),
});
export type ReconcileError = z.infer<typeof ReconcileError>;

/** Counters filled in as a run goes. */
export const ReconcileReport = z.strictObject({
  /** The look-back window scanned (a resumed scan keeps the window it started with). */
  window: z.strictObject({ from: timestamp, until: timestamp }),
  events: z.strictObject({ read: count, applied: count, unchanged: count, notOurs: count }),
  portone: z.strictObject({
    scanned: count,
    applied: count,
    unchanged: count,
    notOurs: count,
    unrecognized: count,
  }),
  waiting: z.strictObject({ checked: count, applied: count, failed: count, skippedExpired: count }),
  cancellations: z.strictObject({ abandonedPayments: count, cleared: count }),
  errors: z.array(ReconcileError),
  /** Set per reader that stopped before the end; the next run resumes there. Null when nothing was cut short. */
  stoppedShort: z.strictObject({
    events: StoppedShort.optional(),
    scan: StoppedShort.optional(),
    waiting: z.strictObject({ reason: z.literal("limit") }).optional(),
  }).nullable(),
  /** Webhook deliveries that failed and were not retried to success (for alerting). */
  failedWebhooks: count,
});
export type ReconcileReport = z.infer<typeof ReconcileReport>;

/** `unauthorized` without the scheduler's secret; a PortOne outage stops the run. */
export const reconcileErrors = [
  ...wrapperErrors,
  "unauthorized",
  "portone_unavailable",
] as const satisfies readonly ErrorCode[];
