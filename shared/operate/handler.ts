/**
 * The `admin` function: the operations view for the merchant's staff (`app_metadata.payments_admin`),
 * reachable with supabase-js (`functions.invoke("admin/health", { method: "GET" })`).
 *
 *   GET /admin/health                      what needs attention now, and the last reconcile run
 *   GET /admin/payments?limit=&status=     recent payments with status and amounts
 *   GET /admin/payments/{id}/timeline      one payment's timeline with PortOne's view beside ours
 *   GET /admin/webhooks?limit=&status=     the webhook inbox, newest first
 *
 * A function rather than an RPC because the timeline asks PortOne (a server-side call with the API
 * secret) and because every table stays closed to API roles: this reads with the service connection
 * after checking the admin claim. Anyone else gets the same 403 on every path, before any lookup, so a
 * customer learns nothing — not even whether a payment exists. Refunds go through `cancel`, unchanged.
 */
import { z } from "../infra/deps.ts";
import { AppError } from "../infra/errors.ts";
import { defineFunction, type EdgeFunction, json, validate } from "../infra/http.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { paymentIdSchema } from "../contract/common.ts";
import { abandonedCancellationCutoff } from "../payments/cancel.ts";
import { paymentStatuses } from "../payments/status.ts";
import { countByKind, needsAttention } from "./attention.ts";
import { paymentTimeline } from "./timeline.ts";

type Route =
  | { kind: "health" }
  | { kind: "payments" }
  | { kind: "timeline"; paymentId: string }
  | { kind: "webhooks" };

/** The sub-path after `/admin` (the platform passes `/admin/...` or `/functions/v1/admin/...`). */
export function routeOf(pathname: string): Route {
  const rest = /(?:^|\/)admin(\/.*)?$/.exec(pathname)?.[1] ?? "";
  let parts: string[];
  try {
    parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new AppError("not_found", "No such route"); // malformed percent-encoding
  }
  if (parts.length === 1 && parts[0] === "health") return { kind: "health" };
  if (parts.length === 1 && parts[0] === "payments") return { kind: "payments" };
  if (parts.length === 1 && parts[0] === "webhooks") return { kind: "webhooks" };
  if (parts.length === 3 && parts[0] === "payments" && parts[2] === "timeline") {
    const id = paymentIdSchema.safeParse(parts[1]);
    if (id.success) return { kind: "timeline", paymentId: id.data };
  }
  throw new AppError("not_found", "No such route");
}

const limit = z.coerce.number().int().min(1).max(200).default(50);
const PaymentsQuery = z.strictObject({ limit, status: z.enum(paymentStatuses).optional() });
const WebhooksQuery = z.strictObject({
  limit,
  status: z.string().regex(/^[a-z_]{1,40}$/).optional(),
});

function query<T extends z.ZodType>(url: URL, schema: T): z.output<T> {
  return validate(schema, Object.fromEntries(url.searchParams));
}

async function health(deps: AppDeps) {
  const items = await needsAttention(deps.sql, {
    storeId: deps.config.portone.storeId,
    abandonedBefore: abandonedCancellationCutoff(deps),
  });
  const [lastRun] = await deps.sql<{ started_at: Date; finished_at: Date; report: unknown }[]>`
    select started_at, finished_at, report from public.reconcile_runs
    where store_id = ${deps.config.portone.storeId} order by started_at desc limit 1`;
  return {
    checkedAt: new Date().toISOString(),
    healthy: items.length === 0,
    counts: countByKind(items),
    needsAttention: items,
    lastReconcile: lastRun
      ? {
        startedAt: lastRun.started_at.toISOString(),
        finishedAt: lastRun.finished_at.toISOString(),
        report: lastRun.report,
      }
      : null,
  };
}

async function recentPayments(deps: AppDeps, input: z.output<typeof PaymentsQuery>) {
  const rows = await deps.sql<Record<string, unknown>[]>`
    select p.id, p.order_id, o.order_name, p.status, p.currency, p.total_amount, p.paid_amount,
           p.cancelled_amount, p.cancellable_amount, p.cancel_reserved_amount, p.method_type, p.mismatch_reason,
           p.created_at, p.updated_at
    from public.payments p join public.orders o on o.id = p.order_id
    ${input.status ? deps.sql`where p.status = ${input.status}` : deps.sql``}
    order by p.created_at desc, p.id
    limit ${input.limit}`;
  return {
    payments: rows.map((r) => ({
      id: r.id,
      orderId: r.order_id,
      orderName: r.order_name,
      status: r.status,
      currency: r.currency,
      totalAmount: r.total_amount,
      paidAmount: r.paid_amount,
      cancelledAmount: r.cancelled_amount,
      cancellableAmount: r.cancellable_amount,
      cancelReservedAmount: r.cancel_reserved_amount,
      methodType: r.method_type,
      mismatchReason: r.mismatch_reason,
      createdAt: (r.created_at as Date).toISOString(),
      updatedAt: (r.updated_at as Date).toISOString(),
    })),
  };
}

async function webhookInbox(deps: AppDeps, input: z.output<typeof WebhooksQuery>) {
  // no payloads: ids, types and outcomes are what an operator triages by
  const rows = await deps.sql<Record<string, unknown>[]>`
    select webhook_id, event_type, payment_id, status, attempts, last_error, processing_ms, payload_conflict,
           received_at, last_received_at, processed_at
    from public.webhook_logs
    ${input.status ? deps.sql`where status = ${input.status}` : deps.sql``}
    order by received_at desc, id desc
    limit ${input.limit}`;
  return {
    webhooks: rows.map((r) => ({
      webhookId: r.webhook_id,
      eventType: r.event_type,
      paymentId: r.payment_id,
      status: r.status,
      attempts: r.attempts,
      lastError: r.last_error,
      processingMs: r.processing_ms,
      payloadConflict: r.payload_conflict,
      receivedAt: (r.received_at as Date).toISOString(),
      lastReceivedAt: (r.last_received_at as Date).toISOString(),
      processedAt: (r.processed_at as Date | null)?.toISOString() ?? null,
    })),
  };
}

export function adminHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "admin",
    methods: ["GET"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ url, caller }) => {
      if (!caller.isAdmin) throw new AppError("forbidden", "This view is for the merchant's staff");
      const route = routeOf(url.pathname);
      switch (route.kind) {
        case "health":
          return json(await health(deps));
        case "payments":
          return json(await recentPayments(deps, query(url, PaymentsQuery)));
        case "webhooks":
          return json(await webhookInbox(deps, query(url, WebhooksQuery)));
        case "timeline": {
          const timeline = await paymentTimeline(deps, route.paymentId);
          if (!timeline) throw new AppError("not_found", "Payment not found");
          return json(timeline);
        }
      }
    },
  });
}
