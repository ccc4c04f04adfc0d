/** The `reconcile` function's contract: POST { lookbackMinutes?, maxPayments?, maxWaiting? }. */
import { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import { timestamp, wrapperErrors } from "./common.ts";

export const ReconcileRequest = z.strictObject({
  /** How far back PortOne's payments are scanned (by creation time). */
  lookbackMinutes: z.number().int().min(1).max(90 * 24 * 60).default(3 * 24 * 60),
  /** An upper bound on the PortOne payments one run looks at. */
  maxPayments: z.number().int().min(1).max(10_000).default(2_000),
  /** An upper bound on our own waiting payments one run re-fetches. */
  maxWaiting: z.number().int().min(0).max(1_000).default(200),
});
export type ReconcileRequest = z.infer<typeof ReconcileRequest>;

const count = z.number().int().min(0);

/** Counters filled in as a run goes. */
export const ReconcileReport = z.strictObject({
  window: z.strictObject({ from: timestamp, until: timestamp }),
  portone: z.strictObject({
    scanned: count,
    applied: count,
    unchanged: count,
    notOurs: count,
    unrecognized: count,
  }),
  waiting: z.strictObject({ checked: count, applied: count, failed: count }),
  cancellations: z.strictObject({ abandonedPayments: count, cleared: count }),
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
