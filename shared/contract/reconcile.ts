/** The `reconcile` function's contract: POST { lookbackMinutes?, maxPayments?, maxWaiting? }. */
import { z } from "../infra/deps-client.ts";

export const ReconcileRequest = z.strictObject({
  /** How far back PortOne's payments are scanned (by creation time). */
  lookbackMinutes: z.number().int().min(1).max(90 * 24 * 60).default(3 * 24 * 60),
  /** An upper bound on the PortOne payments one run looks at. */
  maxPayments: z.number().int().min(1).max(10_000).default(2_000),
  /** An upper bound on our own waiting payments one run re-fetches. */
  maxWaiting: z.number().int().min(0).max(1_000).default(200),
});
export type ReconcileRequest = z.infer<typeof ReconcileRequest>;

/** Counters filled in as a run goes. */
export interface ReconcileReport {
  window: { from: string; until: string };
  portone: { scanned: number; applied: number; unchanged: number; notOurs: number; unrecognized: number };
  waiting: { checked: number; applied: number; failed: number };
  cancellations: { abandonedPayments: number; cleared: number };
  /** Webhook deliveries that failed and were not retried to success (for alerting). */
  failedWebhooks: number;
}
