/**
 * The webhook function against real signed deliveries from the PortOne sandbox over HTTP, and a real
 * PostgreSQL: verification, the exactly-once inbox, retries after our own failures, ordering.
 */
import assert from "node:assert/strict";
import { billingKeyHash } from "../shared/billing/keys.ts";
import { capturedLogLines, startTestApp, type TestApp, type TestUser } from "./support/app.ts";
import { StandardWebhook } from "./support/deps.ts";

async function preparedPayment(app: TestApp, price = 20000) {
  const user = await app.createUser();
  const product = await app.createProduct({ price, name: "웹훅 테스트" });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const { body } = await app.call("prepare", { user, body: { orderId: order.id } });
  return {
    user,
    order,
    checkout: body as { paymentId: string; orderName: string; totalAmount: number; currency: string },
  };
}

function pay(
  app: TestApp,
  user: TestUser,
  checkout: { paymentId: string; orderName: string; totalAmount: number; currency: string },
) {
  return app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
}

async function inbox(app: TestApp, webhookId: string) {
  const [row] = await app.deps.sql`
    select status, attempts, payload_conflict, last_error from public.webhook_logs where webhook_id = ${webhookId}`;
  return row ? { ...row } : undefined;
}

async function webhookEvents(app: TestApp, paymentId: string) {
  const rows = await app.deps.sql`
    select webhook_id, from_status, to_status from public.payment_events
    where payment_id = ${paymentId} and source = 'webhook' order by id`;
  return rows.map((r) => ({ ...r }));
}

function cancelAtPortOne(app: TestApp, paymentId: string, amount: number, currentCancellableAmount: number) {
  return app.deps.portone.cancelPayment({
    paymentId,
    amount,
    reason: "웹훅 테스트",
    requester: "ADMIN",
    currentCancellableAmount,
    idempotencyKey: crypto.randomUUID(),
  });
}

Deno.test("webhook", async (t) => {
  await using app = await startTestApp();
  app.serveWebhook();

  await t.step("a Paid delivery re-fetches the payment and applies it once", async () => {
    const { user, order, checkout } = await preparedPayment(app);
    pay(app, user, checkout);
    await app.sandbox.idle();
    const delivery = app.sandbox.deliveries().find((d) => d.payload.data.paymentId === checkout.paymentId);
    assert.equal(delivery?.status, 200);
    const [row] = await app.deps.sql`
      select p.status, o.status as order_status from public.payments p join public.orders o on o.id = p.order_id
      where p.id = ${checkout.paymentId}`;
    assert.deepEqual({ ...row }, { status: "PAID", order_status: "paid" });
    assert.deepEqual(await webhookEvents(app, checkout.paymentId), [
      { webhook_id: delivery!.webhookId, from_status: "READY", to_status: "PAID" },
    ]);
    assert.deepEqual(await inbox(app, delivery!.webhookId), {
      status: "processed",
      attempts: 1,
      payload_conflict: false,
      last_error: null,
    });
    assert.equal(order.id.length, 36);
  });

  await t.step("the same webhook ×5 in sequence: one application, one event, five attempts", async () => {
    app.sandbox.setWebhookUrl(undefined);
    const { user, checkout } = await preparedPayment(app);
    pay(app, user, checkout);
    app.serveWebhook();
    const webhookId = `msg_${crypto.randomUUID()}`;
    const timestamp = new Date().toISOString();
    for (let i = 0; i < 5; i++) {
      app.sandbox.sendWebhook({
        type: "Transaction.Paid",
        webhookId,
        timestamp,
        data: { paymentId: checkout.paymentId, storeId: app.sandbox.storeId, transactionId: "tx" },
      });
      await app.sandbox.idle();
    }
    const statuses = app.sandbox.deliveries().filter((d) => d.webhookId === webhookId).map((d) => d.status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
    assert.equal((await webhookEvents(app, checkout.paymentId)).length, 1);
    assert.deepEqual(await inbox(app, webhookId), {
      status: "processed",
      attempts: 5,
      payload_conflict: false,
      last_error: null,
    });
  });

  await t.step("the same webhook ×5 at once: one application, one event, five attempts", async () => {
    const { user, checkout } = await preparedPayment(app);
    app.sandbox.injectWebhookFault({
      mode: "duplicate",
      copies: 5,
      concurrent: true,
      times: 1,
      type: "Transaction.Paid",
    });
    pay(app, user, checkout);
    await app.sandbox.idle();
    const deliveries = app.sandbox.deliveries().filter((d) =>
      d.payload.data.paymentId === checkout.paymentId
    );
    assert.equal(deliveries.length, 5);
    assert.ok(deliveries.every((d) => d.status === 200), JSON.stringify(deliveries.map((d) => d.status)));
    assert.equal(new Set(deliveries.map((d) => d.webhookId)).size, 1);
    assert.equal((await webhookEvents(app, checkout.paymentId)).length, 1);
    assert.equal((await inbox(app, deliveries[0]!.webhookId))?.attempts, 5);
  });

  await t.step(
    "Cancelled delivered before Paid ends CANCELLED; PartialCancelled after Cancelled stays CANCELLED",
    async () => {
      const { user, checkout } = await preparedPayment(app, 10000);
      app.sandbox.injectWebhookFault({ mode: "outOfOrder", batchSize: 3, order: "reverse", times: 3 });
      pay(app, user, checkout);
      await cancelAtPortOne(app, checkout.paymentId, 4000, 10000);
      await cancelAtPortOne(app, checkout.paymentId, 6000, 6000);
      await app.sandbox.idle();
      const order = app.sandbox.deliveries()
        .filter((d) => d.payload.data.paymentId === checkout.paymentId)
        .map((d) => d.type);
      assert.deepEqual(order, ["Transaction.Cancelled", "Transaction.PartialCancelled", "Transaction.Paid"]);
      const [row] = await app.deps.sql`
      select p.status, p.cancelled_amount, o.status as order_status
      from public.payments p join public.orders o on o.id = p.order_id where p.id = ${checkout.paymentId}`;
      assert.deepEqual({ ...row }, {
        status: "CANCELLED",
        cancelled_amount: 10000,
        order_status: "cancelled",
      });
      assert.deepEqual((await webhookEvents(app, checkout.paymentId)).map((e) => e.to_status), ["CANCELLED"]);
    },
  );

  await t.step("a PortOne 5xx during the re-fetch → 503; PortOne's retry then succeeds", async () => {
    const { user, checkout } = await preparedPayment(app);
    app.sandbox.injectFault({ operation: "getPayment", mode: "status5xx", status: 500, times: 1 });
    pay(app, user, checkout);
    await app.sandbox.idle();
    const deliveries = app.sandbox.deliveries().filter((d) =>
      d.payload.data.paymentId === checkout.paymentId
    );
    assert.deepEqual(deliveries.map((d) => d.status), [503, 200]);
    assert.deepEqual(await inbox(app, deliveries[0]!.webhookId), {
      status: "processed",
      attempts: 2,
      payload_conflict: false,
      last_error: null,
    });
    assert.deepEqual((await webhookEvents(app, checkout.paymentId)).map((e) => e.to_status), ["PAID"]);
  });

  await t.step(
    "verified deliveries we do not act on are acknowledged with 200 and logged as ignored",
    async () => {
      const cases = [
        {
          type: "Transaction.SomethingNew",
          data: { paymentId: "pay_x", storeId: app.sandbox.storeId },
          reason: "unhandled_type",
        },
        {
          type: "Transaction.Paid",
          data: { paymentId: "pay_x", storeId: "store-someone-else" },
          reason: "other_store",
        },
        {
          type: "Transaction.Paid",
          data: { paymentId: "pay_never_prepared_here_0000", storeId: app.sandbox.storeId },
          reason: "unknown_payment",
        },
      ];
      for (const kase of cases) {
        const webhookId = `msg_${crypto.randomUUID()}`;
        app.sandbox.sendWebhook({ type: kase.type, data: kase.data, webhookId });
        await app.sandbox.idle();
        assert.equal(app.sandbox.deliveries().find((d) => d.webhookId === webhookId)?.status, 200, kase.type);
        assert.deepEqual(await inbox(app, webhookId), {
          status: "ignored",
          attempts: 1,
          payload_conflict: false,
          last_error: kase.reason,
        });
      }
    },
  );

  await t.step(
    "bad signature, stale timestamp, missing headers, tampered body → 400, nothing recorded",
    async () => {
      const { user, checkout } = await preparedPayment(app);
      app.sandbox.injectWebhookFault({ mode: "badSignature", times: 1 });
      pay(app, user, checkout);
      await app.sandbox.idle();
      app.sandbox.injectWebhookFault({ mode: "staleTimestamp", times: 1 });
      app.sandbox.sendWebhook({
        type: "Transaction.Paid",
        data: { paymentId: checkout.paymentId, storeId: app.sandbox.storeId },
      });
      await app.sandbox.idle();
      const rejected = app.sandbox.deliveries().filter((d) =>
        d.faults.length > 0 && d.payload.data.paymentId === checkout.paymentId
      );
      assert.ok(rejected.length >= 2);
      assert.ok(rejected.every((d) => d.status === 400));

      const body = JSON.stringify({
        type: "Transaction.Paid",
        timestamp: new Date().toISOString(),
        data: {
          paymentId: checkout.paymentId,
          storeId: app.sandbox.storeId,
          transactionId: "secret-tx-value",
        },
      });
      const webhookId = `msg_${crypto.randomUUID()}`;
      const signer = new StandardWebhook(app.sandbox.webhookSecret);
      const now = new Date();
      const signature = signer.sign(webhookId, now, body);
      const send = (headers: Record<string, string>, payload: string) =>
        app.functions.webhook.fetch(
          new Request("http://127.0.0.1/functions/v1/webhook", { method: "POST", headers, body: payload }),
        ).then(async (r) => ({ status: r.status, body: await r.json() }));
      const goodHeaders = {
        "content-type": "application/json",
        "webhook-id": webhookId,
        "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
        "webhook-signature": signature,
      };
      const tampered = await send(goodHeaders, body.replace("secret-tx-value", "other-tx-value"));
      assert.equal(tampered.status, 400);
      assert.equal(tampered.body.error.code, "invalid_signature");
      const { "webhook-signature": _, ...unsigned } = goodHeaders;
      const missing = await send(unsigned, body);
      // the caller learns only that the signature is invalid; the reason is for our log
      assert.deepEqual(missing.body, {
        error: { code: "invalid_signature", message: "Webhook signature verification failed" },
      });
      assert.ok(
        capturedLogLines.some((line) =>
          line.includes('"webhook_rejected"') && line.includes('"MISSING_REQUIRED_HEADERS"') &&
          line.includes(webhookId)
        ),
      );

      assert.equal(await inbox(app, webhookId), undefined);
      for (const d of rejected) assert.equal(await inbox(app, d.webhookId), undefined);
      const [payment] = await app.deps
        .sql`select status from public.payments where id = ${checkout.paymentId}`;
      assert.equal(payment?.status, "READY");
      const rejections = capturedLogLines.filter((line) => line.includes('"webhook_rejected"'));
      assert.ok(rejections.some((line) => line.includes(webhookId)));
      assert.ok(
        rejections.every((line) => !line.includes("secret-tx-value") && !line.includes(checkout.paymentId)),
      );
    },
  );

  await t.step("BillingKey events re-fetch the key: a deletion at PortOne marks ours deleted", async () => {
    const user = await app.createUser();
    const billingKey = app.sandbox.issueBillingKey({
      customerId: user.id,
      card: { number: "5365101234569012" },
    });
    const registered = await app.call("billing-key", { user, body: { billingKey } });
    assert.equal(registered.status, 200);
    await app.sandbox.idle();
    await app.deps.portone.deleteBillingKey(billingKey, "고객 요청", "ADMIN");
    await app.sandbox.idle();
    const deleted = app.sandbox.deliveries().find((d) =>
      d.type === "BillingKey.Deleted" && d.payload.data.billingKey === billingKey
    );
    assert.equal(deleted?.status, 200);
    const [row] = await app.deps
      .sql`select status, deleted_at is not null as has_deleted_at from public.billing_keys
        where billing_key_sha256 = ${await billingKeyHash(billingKey)}`;
    assert.deepEqual({ ...row }, { status: "DELETED", has_deleted_at: true });
    const [logged] = await app.deps.sql`select status, payload from public.webhook_logs where webhook_id = ${
      deleted!.webhookId
    }`;
    assert.equal(logged?.status, "processed");
    assert.ok(
      !JSON.stringify(logged?.payload).includes(billingKey),
      "the inbox never stores the billing key",
    );

    const stranger = app.sandbox.issueBillingKey({ customerId: crypto.randomUUID() });
    await app.sandbox.idle();
    const issued = app.sandbox.deliveries().find((d) =>
      d.type === "BillingKey.Issued" && d.payload.data.billingKey === stranger
    );
    assert.deepEqual(await inbox(app, issued!.webhookId), {
      status: "ignored",
      attempts: 1,
      payload_conflict: false,
      last_error: "unknown_billing_key",
    });
  });

  await t.step("a redelivered id with a different body is flagged, not merged", async () => {
    const webhookId = `msg_${crypto.randomUUID()}`;
    for (const paymentId of ["pay_conflict_first_000001", "pay_conflict_second_00002"]) {
      app.sandbox.sendWebhook({
        type: "Transaction.Paid",
        webhookId,
        data: { paymentId, storeId: app.sandbox.storeId },
      });
      await app.sandbox.idle();
    }
    assert.deepEqual(await inbox(app, webhookId), {
      status: "ignored",
      attempts: 2,
      payload_conflict: true,
      last_error: "unknown_payment",
    });
  });
});

Deno.test("webhook accepts the previous secret during rotation, and only configured secrets", async (t) => {
  const oldSecret = "whsec_b2xkLXNlY3JldC1iZWluZy1yb3RhdGVkLW91dC0xMjM0";
  const newSecret = "whsec_bmV3LXJvdGF0ZWQtc2VjcmV0LTEyMzQ1Njc4OTAxMjM0";
  for (
    const [name, env, expected] of [
      ["old secret kept as previous → 200", {
        PORTONE_WEBHOOK_SECRET: newSecret,
        PORTONE_WEBHOOK_SECRET_PREVIOUS: oldSecret,
      }, 200],
      ["old secret dropped → 400", { PORTONE_WEBHOOK_SECRET: newSecret }, 400],
    ] as const
  ) {
    await t.step(name, async () => {
      await using app = await startTestApp({ sandbox: { webhookSecret: oldSecret }, env });
      app.serveWebhook();
      const { user, checkout } = await preparedPayment(app);
      pay(app, user, checkout);
      await app.sandbox.idle();
      const delivery = app.sandbox.deliveries().find((d) => d.payload.data.paymentId === checkout.paymentId);
      assert.equal(delivery?.status, expected);
      const [row] = await app.deps.sql`select status from public.payments where id = ${checkout.paymentId}`;
      assert.equal(row?.status, expected === 200 ? "PAID" : "READY");
    });
  }
});
