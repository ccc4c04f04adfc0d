/**
 * OPERATE: the admin timeline of a payment through its whole life, what a customer gets from the same
 * interface, and the alerts reconcile sends to a receiver on loopback (one per problem, never repeated).
 */
import assert from "node:assert/strict";
import {
  type CallResult,
  capturedLogLines,
  startTestApp,
  type TestApp,
  testReconcileSecret,
  type TestUser,
} from "./support/app.ts";
import { StandardWebhook } from "./support/deps.ts";

interface Checkout {
  paymentId: string;
  orderName: string;
  totalAmount: number;
  taxFreeAmount: number;
  currency: string;
}

async function prepared(app: TestApp, user: TestUser, price: number, idempotencyKey?: string) {
  const product = await app.createProduct({ price, name: "운영 테스트" });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const { status, body } = await app.call("prepare", {
    user,
    body: { orderId: order.id },
    headers: idempotencyKey ? { "idempotency-key": idempotencyKey } : {},
  });
  assert.equal(status, 200, JSON.stringify(body));
  return body as Checkout;
}

function adminGet(app: TestApp, user: TestUser | null, path: string): Promise<CallResult> {
  return app.call("admin", { user, method: "GET", path });
}

function reconcile(app: TestApp) {
  return app.call("reconcile", { body: {}, token: testReconcileSecret });
}

// deno-lint-ignore no-explicit-any -- timeline entries are checked field by field
type Entry = any;

Deno.test("operate: a payment's timeline, pay → duplicate webhooks → refunds → reconcile", async (t) => {
  await using app = await startTestApp();
  app.serveWebhook();
  const customer = await app.createUser();
  const admin = await app.createUser({ admin: true });
  const checkout = await prepared(app, customer, 30000, `prepare-${crypto.randomUUID()}`);
  const id = checkout.paymentId;
  const timeline = () => adminGet(app, admin, `/payments/${id}/timeline`);

  let paidWebhookId = "";
  await t.step("pay; PortOne delivers Transaction.Paid three times", async () => {
    app.sandbox.injectWebhookFault({
      mode: "duplicate",
      copies: 3,
      concurrent: false,
      times: 1,
      type: "Transaction.Paid",
    });
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: customer.id });
    await app.sandbox.idle();
    const confirmed = await app.call("confirm", { user: customer, body: { paymentId: id } });
    assert.equal(confirmed.body.status, "PAID");
    const deliveries = app.sandbox.deliveries().filter((d) => d.payload.data.paymentId === id);
    assert.equal(deliveries.length, 3);
    paidWebhookId = deliveries[0]!.webhookId;
  });

  await t.step("partial refund through cancel, then a refund in PortOne's console", async () => {
    const cancelled = await app.call("cancel", {
      user: admin,
      body: { paymentId: id, amount: 10000, reason: "부분 환불" },
      headers: { "idempotency-key": `cancel-${crypto.randomUUID()}` },
    });
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    await app.sandbox.idle();
    // the console refund's webhook is lost: only reconcile can bring it
    app.sandbox.setWebhookUrl(undefined);
    await app.deps.portone.cancelPayment({
      paymentId: id,
      amount: 5000,
      reason: "콘솔 환불",
      requester: "ADMIN",
      currentCancellableAmount: 20000,
      idempotencyKey: crypto.randomUUID(),
    });
  });

  let consoleCancellationId = "";
  await t.step(
    "before reconcile, PortOne's view differs from ours and the difference is marked",
    async () => {
      const { status, body } = await timeline();
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.portone.found, true);
      assert.equal(body.ours.cancelledAmount, 10000);
      assert.equal(body.portone.state.cancelledAmount, 15000);
      const fields = body.differences.map((d: { field: string }) => d.field);
      assert.ok(fields.includes("cancelledAmount"), JSON.stringify(body.differences));
      const missing = body.differences.filter((d: { field: string; ours: unknown }) =>
        d.field.startsWith("cancellations.") && d.ours === null
      );
      assert.equal(missing.length, 1, JSON.stringify(body.differences));
      assert.equal(missing[0].portone, "SUCCEEDED");
      consoleCancellationId = missing[0].field.slice("cancellations.".length);
    },
  );

  await t.step("after reconcile: every step in order, and no difference left", async () => {
    const run = await reconcile(app);
    assert.equal(run.status, 200, JSON.stringify(run.body));
    const { status, body } = await timeline();
    assert.equal(status, 200);
    assert.deepEqual(body.differences, []);
    assert.equal(body.ours.status, "PARTIAL_CANCELLED");
    assert.equal(body.ours.cancelledAmount, 15000);
    const entries: Entry[] = body.entries;
    const times = entries.map((e) => e.at);
    assert.deepEqual(times, [...times].sort(), "entries are in time order");

    const find = (label: string, match: (e: Entry) => boolean) => {
      const index = entries.findIndex(match);
      assert.ok(index >= 0, `no ${label} in ${JSON.stringify(entries, null, 1)}`);
      return index;
    };
    const steps = [
      find("prepare request", (e) => e.type === "idempotent_request" && e.route === "prepare"),
      find("created", (e) => e.type === "audit" && e.kind === "created" && e.source === "prepare"),
      find(
        "paid webhook",
        (e) =>
          e.type === "webhook" && e.webhookId === paidWebhookId && e.eventType === "Transaction.Paid" &&
          e.attempts === 3 && e.outcome === "processed" && typeof e.processingMs === "number",
      ),
      find("READY → PAID", (e) =>
        e.type === "audit" && e.toStatus === "PAID" && e.fromStatus === "READY" &&
        e.webhookId === paidWebhookId),
      find("cancel request", (e) => e.type === "idempotent_request" && e.route === "cancel"),
      find(
        "refund requested",
        (e) =>
          e.type === "cancellation_requested" && e.requester === "ADMIN" && e.amount === 10000 &&
          e.requestedBy === admin.id,
      ),
      find(
        "refund settled",
        (e) => e.type === "cancellation_settled" && e.status === "SUCCEEDED" && e.amount === 10000,
      ),
      // the cancel's own sync, or PortOne's Transaction.PartialCancelled when that delivery wins the race
      // (the refund's webhook is sent before PortOne answers our cancel): either way exactly one change
      find(
        "PAID → PARTIAL_CANCELLED",
        (e) =>
          e.type === "audit" && (e.source === "cancel" || e.source === "webhook") &&
          e.fromStatus === "PAID" && e.toStatus === "PARTIAL_CANCELLED",
      ),
      find(
        "console refund",
        (e) => e.type === "cancellation_requested" && e.requester === "PORTONE" && e.amount === 5000,
      ),
      find(
        "console refund settled",
        (e) => e.type === "cancellation_settled" && e.portoneCancellationId === consoleCancellationId,
      ),
      find(
        "reconcile's change",
        (e) => e.type === "audit" && e.source === "reconcile" && e.detail.cancelledAmount === 15000,
      ),
    ];
    assert.deepEqual(steps, [...steps].sort((a, b) => a - b), "the steps appear in the order they happened");
    assert.equal(
      entries.filter((e) =>
        e.type === "audit" && e.fromStatus === "PAID" && e.toStatus === "PARTIAL_CANCELLED"
      )
        .length,
      1,
      "the partial refund is one status change",
    );
    const paidWebhooks = entries.filter((e) => e.type === "webhook" && e.eventType === "Transaction.Paid");
    assert.equal(paidWebhooks.length, 1, "a duplicated delivery is one inbox row with its attempts");
    assert.ok(entries.some((e) => e.type === "webhook" && e.eventType === "Transaction.PartialCancelled"));
  });

  await t.step("a customer gets the same 403 for every path, before any lookup", async () => {
    const portoneCalls = app.sandbox.requests().length;
    const answers = [
      await adminGet(app, customer, `/payments/${id}/timeline`),
      await adminGet(app, customer, `/payments/pay_${"0".repeat(32)}/timeline`),
      await adminGet(app, customer, "/health"),
      await adminGet(app, customer, "/payments"),
      await adminGet(app, customer, "/webhooks"),
      await adminGet(app, customer, "/no-such-route"),
    ];
    for (const answer of answers) {
      assert.equal(answer.status, 403);
      assert.deepEqual(answer.body, answers[0]!.body);
    }
    assert.equal(answers[0]!.body.error.code, "forbidden");
    assert.ok(!JSON.stringify(answers[0]!.body).includes(id));
    assert.equal(app.sandbox.requests().length, portoneCalls, "PortOne is never asked for a customer");
    const anonymous = await adminGet(app, null, `/payments/${id}/timeline`);
    assert.equal(anonymous.status, 401);
  });

  await t.step("a virtual-account refund shows its refund account masked, never in full", async () => {
    const va = await prepared(app, customer, 21000);
    app.sandbox.pay({ ...va, channel: "TEST", method: "VIRTUAL_ACCOUNT", customerId: customer.id });
    app.sandbox.depositVirtualAccount(va.paymentId);
    assert.equal(
      (await app.call("confirm", { user: customer, body: { paymentId: va.paymentId } })).body.status,
      "PAID",
    );
    const account = { bank: "KOOKMIN", number: "110987654321", holderName: "홍길동" };
    const refunded = await app.call("cancel", {
      user: admin,
      body: { paymentId: va.paymentId, reason: "가상계좌 환불", refundAccount: account },
      headers: { "idempotency-key": `cancel-${crypto.randomUUID()}` },
    });
    assert.equal(refunded.status, 200, JSON.stringify(refunded.body));
    const { body } = await adminGet(app, admin, `/payments/${va.paymentId}/timeline`);
    const requested = body.entries.find((e: Entry) => e.type === "cancellation_requested");
    assert.deepEqual(requested.refundAccount, {
      bank: "KOOKMIN",
      numberMasked: "****4321",
      holderName: "홍**",
    });
    assert.ok(!JSON.stringify(body).includes(account.number));
    assert.ok(!JSON.stringify(body).includes(account.holderName));
  });

  await t.step("admins: unknown payment 404; recent payments and the inbox list it", async () => {
    const unknown = await adminGet(app, admin, `/payments/pay_${"0".repeat(32)}/timeline`);
    assert.equal(unknown.status, 404);
    const payments = await adminGet(app, admin, "/payments?limit=200");
    assert.equal(payments.status, 200);
    const row = payments.body.payments.find((p: { id: string }) => p.id === id);
    assert.deepEqual(
      [row.status, row.totalAmount, row.paidAmount, row.cancelledAmount, row.cancellableAmount],
      ["PARTIAL_CANCELLED", 30000, 30000, 15000, 15000],
    );
    const inbox = await adminGet(app, admin, "/webhooks?limit=200");
    assert.ok(inbox.body.webhooks.some((w: { webhookId: string }) => w.webhookId === paidWebhookId));
    const bad = await adminGet(app, admin, "/payments?limit=0");
    assert.equal(bad.status, 400);
    for (const path of ["/payments/%E0%A4%A/timeline", "/payments/x/timeline", "/nothing", ""]) {
      assert.equal((await adminGet(app, admin, path)).status, 404, path);
    }
  });
});

/** A Slack/Discord-style receiver on loopback that records every message. */
function startReceiver() {
  const messages: { text: string; content: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    messages.push(await request.json());
    return new Response("ok");
  });
  const secretPath = `/services/T0/B0/${crypto.randomUUID().replaceAll("-", "")}`;
  return {
    url: `http://127.0.0.1:${server.addr.port}${secretPath}`,
    secretPath,
    messages,
    close: () => server.shutdown(),
  };
}

Deno.test("operate: each new problem alerts exactly once; the next reconcile repeats none", async (t) => {
  const receiver = startReceiver();
  await using app = await startTestApp({ env: { ALERT_WEBHOOK_URL: receiver.url } });
  const customer = await app.createUser();
  const admin = await app.createUser({ admin: true });
  const about = (kind: string, paymentId: string) =>
    receiver.messages.filter((m) => m.text.includes(`${kind} · ${paymentId}`));

  // 1. A webhook that fails three times: PortOne cannot answer our re-fetch on any of its deliveries.
  const failing = await prepared(app, customer, 11000);
  app.sandbox.pay({ ...failing, channel: "TEST", method: "CARD", customerId: customer.id });
  const webhookId = `msg_${crypto.randomUUID()}`;
  await t.step("a webhook fails three times", async () => {
    app.sandbox.injectFault({ operation: "getPayment", mode: "status5xx", status: 500, times: 3 });
    const body = JSON.stringify({
      type: "Transaction.Paid",
      timestamp: new Date().toISOString(),
      data: { paymentId: failing.paymentId, storeId: app.sandbox.storeId, transactionId: "tx-1" },
    });
    const signer = new StandardWebhook(app.sandbox.webhookSecret);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const now = new Date();
      const response = await app.functions.webhook.fetch(
        new Request("http://127.0.0.1/functions/v1/webhook", {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "webhook-id": webhookId,
            "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
            "webhook-signature": signer.sign(webhookId, now, body),
          },
          body,
        }),
      );
      await response.body?.cancel();
      assert.equal(response.status, 503);
    }
    const [row] = await app.deps.sql`
      select status, attempts from public.webhook_logs where webhook_id = ${webhookId}`;
    assert.deepEqual({ ...row }, { status: "failed", attempts: 3 });
  });

  // 2. A mismatch: the payment window was paid under another order name.
  const mismatched = await prepared(app, customer, 12000);
  await t.step("a mismatch", async () => {
    app.sandbox.pay({
      ...mismatched,
      orderName: "다른 상품",
      channel: "TEST",
      method: "CARD",
      customerId: customer.id,
    });
    const confirmed = await app.call("confirm", {
      user: customer,
      body: { paymentId: mismatched.paymentId },
    });
    assert.equal(confirmed.body.error.code, "payment_mismatch");
  });

  // 3. A cancellation PortOne has not settled, past the abandonment cutoff.
  const stuck = await prepared(app, customer, 13000);
  await t.step("a stuck cancellation", async () => {
    app.sandbox.pay({
      ...stuck,
      channel: "TEST",
      method: "CARD",
      customerId: customer.id,
      asyncCancel: true,
    });
    await app.call("confirm", { user: customer, body: { paymentId: stuck.paymentId } });
    const cancelled = await app.call("cancel", {
      user: admin,
      body: { paymentId: stuck.paymentId, reason: "환불 지연" },
      headers: { "idempotency-key": `cancel-${crypto.randomUUID()}` },
    });
    assert.equal(cancelled.body.cancellation?.status, "REQUESTED", JSON.stringify(cancelled.body));
    await app.deps.sql`
      update public.payment_cancellations set requested_at = now() - interval '10 minutes'
      where payment_id = ${stuck.paymentId}`;
  });

  // 4. A payment waiting on PortOne past its window, and a delivery whose processing lease ran out.
  const waiting = await prepared(app, customer, 15000);
  await t.step("a payment pending for two hours and a stuck delivery", async () => {
    app.sandbox.setPayPending({ ...waiting, channel: "TEST", method: "CARD", customerId: customer.id });
    const confirmed = await app.call("confirm", { user: customer, body: { paymentId: waiting.paymentId } });
    assert.equal(confirmed.body.status, "PAY_PENDING", JSON.stringify(confirmed.body));
    await app.deps.sql`
      update public.payments set requested_at = now() - interval '2 hours' where id = ${waiting.paymentId}`;
    await app.deps.sql`
      insert into public.webhook_logs
        (webhook_id, event_type, payment_id, store_id, payload, payload_sha256, status, lease_token, lease_expires_at)
      values (${`msg_${crypto.randomUUID()}`}, 'Transaction.PayPending', ${waiting.paymentId}, ${app.sandbox.storeId},
              '{}', ${"0".repeat(64)}, 'processing', gen_random_uuid(), now() - interval '1 minute')`;
  });

  await t.step("reconcile alerts each problem once", async () => {
    assert.equal(receiver.messages.length, 0);
    const run = await reconcile(app);
    assert.equal(run.status, 200, JSON.stringify(run.body));
    assert.equal(about("webhook_failed", failing.paymentId).length, 1, JSON.stringify(receiver.messages));
    assert.equal(about("payment_mismatch", mismatched.paymentId).length, 1);
    assert.equal(about("cancellation_stuck", stuck.paymentId).length, 1);
    assert.equal(about("payment_waiting", waiting.paymentId).length, 1);
    assert.equal(about("webhook_stuck", waiting.paymentId).length, 1);
    // the failed webhook's payment was healed by this run: that drift is reported too
    assert.equal(about("drift_fixed", failing.paymentId).length, 1);
    const [failed] = about("webhook_failed", failing.paymentId);
    assert.match(failed!.text, /failed 3 time/);
    // Slack reads `text`, Discord `content`
    for (const message of receiver.messages) assert.equal(message.content, message.text);
  });

  await t.step("the health view shows the same problems to an admin", async () => {
    const { status, body } = await adminGet(app, admin, "/health");
    assert.equal(status, 200);
    const keys = body.needsAttention.map((i: { key: string }) => i.key);
    assert.ok(keys.includes(`webhook_failed:${webhookId}`), JSON.stringify(keys));
    assert.ok(keys.includes(`payment_mismatch:${mismatched.paymentId}`));
    assert.ok(keys.some((k: string) => k.startsWith("cancellation_stuck:")));
    assert.equal(body.healthy, false);
    assert.ok(body.lastReconcile?.report?.window);
  });

  await t.step("the next reconcile sends none of them again", async () => {
    const before = receiver.messages.length;
    const run = await reconcile(app);
    assert.equal(run.status, 200);
    assert.equal(receiver.messages.length, before, JSON.stringify(receiver.messages.slice(before)));
    assert.equal(about("webhook_failed", failing.paymentId).length, 1);
    assert.equal(about("payment_mismatch", mismatched.paymentId).length, 1);
    assert.equal(about("cancellation_stuck", stuck.paymentId).length, 1);
    assert.equal(about("drift_fixed", failing.paymentId).length, 1);
  });

  await t.step("the mismatched payment's timeline marks what differs and shows the mismatch", async () => {
    const { status, body } = await adminGet(app, admin, `/payments/${mismatched.paymentId}/timeline`);
    assert.equal(status, 200);
    assert.deepEqual(body.differences, [{
      field: "orderName",
      ours: mismatched.orderName,
      portone: "다른 상품",
    }]);
    const mismatch = body.entries.find((e: Entry) => e.type === "mismatch");
    assert.deepEqual(mismatch?.detail.mismatch, ["order_name_mismatch"]);
    assert.equal(body.payment.mismatchReason, "order_name_mismatch");
  });

  await t.step("the receiver's URL never reaches a log line, even when it is down", async () => {
    await receiver.close();
    const down = await prepared(app, customer, 14000);
    app.sandbox.pay({ ...down, orderName: "또 다른 상품", channel: "TEST", method: "CARD" });
    await app.call("confirm", { user: customer, body: { paymentId: down.paymentId } });
    const run = await reconcile(app);
    assert.equal(run.status, 200, "an unreachable receiver does not fail reconcile");
    assert.ok(capturedLogLines.some((line) => line.includes('"alert_unreachable"')));
    const [pending] = await app.deps.sql`
      select alerted_at from public.operation_alerts where problem_key = ${`payment_mismatch:${down.paymentId}`}`;
    assert.equal(pending?.alerted_at, null, "not marked alerted: the next run retries it");
    for (const line of capturedLogLines) {
      assert.ok(!line.includes(receiver.secretPath), `the alert URL leaked: ${line}`);
    }
  });
});
