// The operations page, written the way a merchant's back office would use supabase-js: everything through
// the `admin` function (GET routes) and refunds through the real `cancel` function. The only dev-stack
// specific is signing in: /devstack/v1/token mints an admin (app_metadata.payments_admin) token.
const $ = (id) => document.getElementById(id);
const won = (n) => `${Number(n).toLocaleString("ko-KR")}원`;
const time = (iso) => (iso ? new Date(iso).toISOString().slice(11, 23) : "");
const adminUserId = "00000000-0000-4000-8000-00000000ad01";

let client;
let openPaymentId = null;

function showError(message) {
  $("error").textContent = message;
  document.body.dataset.state = "error";
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

async function call(name, options = {}) {
  const { data, error } = await client.functions.invoke(name, options);
  if (!error) return data;
  const payload = await error.context?.json?.().catch(() => null);
  throw new Error(`${name}: ${payload?.error?.message ?? error.message}`);
}

const get = (path) => call(`admin/${path}`, { method: "GET" });

async function showHealth() {
  const health = await get("health");
  $("health-status").textContent = health.healthy
    ? "healthy"
    : `needs attention (${health.needsAttention.length})`;
  $("health-status").className = health.healthy ? "ok" : "bad";
  $("attention").replaceChildren(...health.needsAttention.map((item) => {
    const li = document.createElement("li");
    li.dataset.kind = item.kind;
    li.dataset.key = item.key;
    li.textContent = `${item.kind}${item.paymentId ? ` · ${item.paymentId}` : ""}: ${item.summary}`;
    return li;
  }));
  $("last-reconcile").textContent = health.lastReconcile
    ? `${health.lastReconcile.finishedAt} (applied ${health.lastReconcile.report.portone?.applied ?? 0})`
    : "never";
}

async function showPayments() {
  const { payments } = await get("payments?limit=20");
  $("payment-rows").replaceChildren(...payments.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.paymentId = p.id;
    tr.append(
      cell(p.id, "mono"),
      cell(p.orderName),
      cell(p.status + (p.mismatchReason ? ` ⚠ ${p.mismatchReason}` : "")),
      cell(won(p.paidAmount), "num"),
      cell(won(p.cancelledAmount), "num"),
      cell(won(p.cancellableAmount), "num"),
    );
    const button = document.createElement("button");
    button.className = "open-timeline";
    button.textContent = "Timeline";
    button.addEventListener("click", () => run(() => showTimeline(p.id)));
    const td = document.createElement("td");
    td.append(button);
    tr.append(td);
    return tr;
  }));
}

async function showWebhooks() {
  const { webhooks } = await get("webhooks?limit=20");
  $("webhook-rows").replaceChildren(...webhooks.map((w) => {
    const tr = document.createElement("tr");
    tr.dataset.webhookId = w.webhookId;
    tr.dataset.status = w.status;
    tr.append(
      cell(time(w.receivedAt), "mono"),
      cell(w.webhookId, "mono"),
      cell(w.eventType),
      cell(w.paymentId, "mono"),
      cell(w.status, w.status === "failed" ? "bad" : ""),
      cell(String(w.attempts), "num"),
      cell(w.lastError),
    );
    return tr;
  }));
}

function describe(entry) {
  switch (entry.type) {
    case "audit":
    case "mismatch":
      return `${entry.source} ${entry.kind}${
        entry.toStatus ? ` ${entry.fromStatus ?? "–"} → ${entry.toStatus}` : ""
      }`;
    case "webhook":
      return `${entry.eventType} · ${entry.outcome} after ${entry.attempts} attempt(s)` +
        (entry.lastError ? ` (${entry.lastError})` : "") +
        (entry.processingMs !== null ? ` · ${entry.processingMs} ms` : "");
    case "cancellation_requested":
      return `${won(entry.amount)} by ${entry.requester.toLowerCase()}: ${entry.reason}` +
        (entry.refundAccount ? ` → ${entry.refundAccount.bank} ${entry.refundAccount.numberMasked}` : "");
    case "cancellation_settled":
      return `${won(entry.amount)} ${entry.status}${entry.failureReason ? ` (${entry.failureReason})` : ""}`;
    case "idempotent_request":
      return `${entry.route} → ${entry.responseStatus ?? entry.status}`;
    default:
      return JSON.stringify(entry);
  }
}

function state(label, s) {
  return `${label}: ${s.status} · paid ${won(s.paidAmount)} · cancelled ${won(s.cancelledAmount)}`;
}

async function showTimeline(paymentId) {
  const timeline = await get(`payments/${encodeURIComponent(paymentId)}/timeline`);
  openPaymentId = paymentId;
  $("timeline-payment").textContent = paymentId;
  $("ours").textContent = state("ours", timeline.ours);
  $("portone").textContent = timeline.portone.state
    ? state("PortOne", timeline.portone.state)
    : timeline.portone.found === false
    ? "not at PortOne"
    : "PortOne unavailable";
  $("differences").textContent = timeline.differences.length === 0
    ? "none"
    : timeline.differences.map((d) => `${d.field}: ours ${d.ours} / PortOne ${d.portone}`).join("; ");
  $("differences").className = timeline.differences.length === 0 ? "ok" : "bad";
  $("timeline-entries").replaceChildren(...timeline.entries.map((entry) => {
    const li = document.createElement("li");
    li.dataset.type = entry.type;
    li.innerHTML = `<span class="at"></span><span class="type"></span><span class="what"></span>`;
    li.querySelector(".at").textContent = time(entry.at);
    li.querySelector(".type").textContent = entry.type;
    li.querySelector(".what").textContent = describe(entry);
    return li;
  }));
  $("refund").disabled = timeline.payment.cancellableAmount === 0;
  $("timeline").hidden = false;
  document.body.dataset.state = "timeline";
}

async function refund() {
  const paymentId = openPaymentId;
  $("refund").disabled = true;
  // one key per click: a retried request of the same refund can never pay out twice
  const result = await call("cancel", {
    body: { paymentId, reason: "operations page refund" },
    headers: { "idempotency-key": crypto.randomUUID() },
  });
  $("refund-result").textContent = `refunded ${won(result.cancellation.amount)} · ${result.status}`;
  await refreshAll();
  await showTimeline(paymentId);
  document.body.dataset.state = "refunded";
}

async function refreshAll() {
  await Promise.all([showHealth(), showPayments(), showWebhooks()]);
}

async function run(action) {
  $("error").textContent = "";
  try {
    await action();
  } catch (error) {
    showError(String(error?.message ?? error));
  }
}

async function main() {
  const config = await (await fetch("/devstack/v1/config")).json();
  const session = await (await fetch("/devstack/v1/token", {
    method: "POST",
    body: JSON.stringify({ userId: adminUserId, admin: true }),
  })).json();
  client = supabase.createClient(config.supabaseUrl, config.anonKey, {
    accessToken: () => Promise.resolve(session.accessToken),
  });
  $("refresh").addEventListener("click", () =>
    run(async () => {
      await refreshAll();
      if (openPaymentId) await showTimeline(openPaymentId);
      document.body.dataset.state = "ready";
    }));
  $("refund").addEventListener("click", () => run(refund));
  await refreshAll();
  document.body.dataset.state = "ready";
}

run(main);
