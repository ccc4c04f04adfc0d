/**
 * After each reconcile run: record the run (the health view's "last run" and its drift), then push every
 * problem that newly needs attention to ALERT_WEBHOOK_URL — one message per new problem, never one per
 * run. What was alerted is persisted (operation_alerts, keyed by the problem's stable key), so the next
 * run stays quiet about it; a message the receiver did not accept is retried by the next run.
 *
 * The payload carries both `text` (Slack incoming webhooks) and `content` (Discord webhooks); each
 * service ignores the other's field. The URL is a secret: it is never logged, and neither are fetch
 * errors (their messages contain the URL).
 */
import type { Sql } from "../infra/db.ts";
import { log } from "../infra/log.ts";
import { abandonedCancellationCutoff } from "../payments/cancel.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { type AttentionItem, needsAttention } from "./attention.ts";

/** Messages one run sends at most; the rest of a flood goes out as one digest. */
export const maxAlertsPerRun = 20;
const claimSeconds = 120;
const sendTimeoutMs = 5_000;
/** Discord refuses content over 2000 characters. */
const maxMessageChars = 1_900;
const keepRunsDays = 30;

export interface AlertDeps {
  readonly sql: Sql;
  readonly config: { readonly alertWebhookUrl: string | undefined };
}

export interface AlertOutcome {
  /** Problems needing attention now. */
  readonly open: number;
  /** Messages the receiver accepted in this run. */
  readonly sent: number;
  /** True when the receiver refused or could not be reached (the rest wait for the next run). */
  readonly failed: boolean;
}

function message(item: AttentionItem): string {
  const payment = item.paymentId ? ` · ${item.paymentId}` : "";
  return `[payments] ${item.kind}${payment}: ${item.summary} (since ${item.since})`.slice(0, maxMessageChars);
}

function digest(items: readonly AttentionItem[]): string {
  const byKind = new Map<string, number>();
  for (const item of items) byKind.set(item.kind, (byKind.get(item.kind) ?? 0) + 1);
  const parts = [...byKind].map(([kind, n]) => `${n} ${kind}`).join(", ");
  return `[payments] ${items.length} more new problems: ${parts} (see the operations view)`.slice(
    0,
    maxMessageChars,
  );
}

/** POSTs one message; true when the receiver accepted it (2xx). */
async function post(url: string, text: string): Promise<boolean> {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text, content: text }),
      redirect: "error",
      signal: AbortSignal.timeout(sendTimeoutMs),
    });
    await response.body?.cancel();
    if (response.ok) return true;
    log("warn", "alert_refused", { status: response.status });
    return false;
  } catch (error) {
    // the error's message names the URL: only its class is logged
    log("warn", "alert_unreachable", { reason: error instanceof Error ? error.name : "error" });
    return false;
  }
}

/** Claims the items nobody has alerted (or is alerting) yet; returns the claimed ones. */
async function claimNew(sql: Sql, items: readonly AttentionItem[]): Promise<AttentionItem[]> {
  if (items.length === 0) return [];
  const claimed = await sql<{ problem_key: string }[]>`
    insert into public.operation_alerts as a (problem_key, kind, payment_id, summary, claimed_until)
    select k, kind, p, s, now() + make_interval(secs => ${claimSeconds})
    from unnest(${items.map((i) => i.key)}::text[], ${items.map((i) => i.kind)}::text[],
                ${items.map((i) => i.paymentId)}::text[], ${
    items.map((i) => i.summary.slice(0, 500))
  }::text[])
         as t(k, kind, p, s)
    on conflict (problem_key) do update set claimed_until = excluded.claimed_until
    where a.alerted_at is null and (a.claimed_until is null or a.claimed_until < now())
    returning a.problem_key`;
  const keys = new Set(claimed.map((row) => row.problem_key));
  return items.filter((item) => keys.has(item.key));
}

async function markAlerted(sql: Sql, keys: readonly string[]): Promise<void> {
  await sql`
    update public.operation_alerts set alerted_at = now(), claimed_until = null
    where problem_key = any(${keys}::text[])`;
}

async function release(sql: Sql, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await sql`
    update public.operation_alerts set claimed_until = null
    where problem_key = any(${keys}::text[]) and alerted_at is null`;
}

/** Records a finished reconcile run (started at `startedAt`) with its report. */
export async function recordReconcileRun(
  sql: Sql,
  storeId: string,
  startedAt: string,
  report: unknown,
): Promise<void> {
  const json = sql.json(report as never);
  await sql`
    insert into public.reconcile_runs (store_id, started_at, report) values (${storeId}, ${startedAt}, ${json})`;
  await sql`
    delete from public.reconcile_runs where started_at < now() - make_interval(days => ${keepRunsDays})`;
}

/** Sends one alert per problem that newly needs attention; see the module comment. */
export async function alertNewProblems(
  deps: AlertDeps,
  options: { storeId: string; abandonedBefore: Date },
): Promise<AlertOutcome> {
  const items = await needsAttention(deps.sql, options);
  const url = deps.config.alertWebhookUrl;
  if (!url) return { open: items.length, sent: 0, failed: false };

  const fresh = await claimNew(deps.sql, items);
  let sent = 0;
  for (const [index, item] of fresh.entries()) {
    const rest = fresh.slice(index);
    const isDigest = index === maxAlertsPerRun - 1 && rest.length > 1;
    const ok = await post(url, isDigest ? digest(rest) : message(item));
    if (!ok) {
      await release(deps.sql, rest.map((i) => i.key));
      return { open: items.length, sent, failed: true };
    }
    await markAlerted(deps.sql, isDigest ? rest.map((i) => i.key) : [item.key]);
    sent++;
    if (isDigest) break;
  }
  // Problems resolved long ago are forgotten; one still open keeps its row, so it never alerts twice.
  await deps.sql`
    delete from public.operation_alerts
    where alerted_at < now() - interval '30 days' and problem_key <> all(${items.map((i) => i.key)}::text[])`;
  if (sent > 0) log("info", "alerts_sent", { sent, open: items.length });
  return { open: items.length, sent, failed: false };
}

/**
 * The one call reconcile makes when a run has finished: record it, then alert. Never fails the run (the
 * payments are already healed); a failure here is logged and retried by the next run.
 */
export async function afterReconcile(
  deps: AppDeps,
  report: { readonly window: { readonly until: string } },
): Promise<void> {
  try {
    await recordReconcileRun(deps.sql, deps.config.portone.storeId, report.window.until, report);
    await alertNewProblems(deps, {
      storeId: deps.config.portone.storeId,
      abandonedBefore: abandonedCancellationCutoff(deps),
    });
  } catch (error) {
    log("error", "operations_after_reconcile_failed", { error });
  }
}
