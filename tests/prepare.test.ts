import assert from "node:assert/strict";
import { startTestApp } from "./support/app.ts";

Deno.test("prepare", async (t) => {
  await using app = await startTestApp();
  const product = await app.createProduct({ price: 15000, taxFree: 5000, name: "테스트 상품" });

  await t.step("returns what requestPayment needs, priced from the order, and pre-registers it", async () => {
    const user = await app.createUser();
    const order = await app.createOrder(user, [{ productId: product, quantity: 2 }]);
    const { status, body } = await app.call("prepare", { user, body: { orderId: order.id } });
    assert.equal(status, 200);
    assert.match(body.paymentId, /^pay_[0-9a-f]{32}$/);
    assert.deepEqual({ ...body, paymentId: "" }, {
      paymentId: "",
      storeId: app.sandbox.storeId,
      channelKey: app.sandbox.channels.test.key,
      orderName: "테스트 상품",
      totalAmount: 30000,
      taxFreeAmount: 10000,
      currency: "KRW",
      customer: { customerId: user.id },
    });
    const preRegistrations = app.sandbox.requests().filter((r) =>
      r.operation === "preRegisterPayment" && r.path.includes(body.paymentId)
    );
    assert.equal(preRegistrations.length, 1);
    assert.equal(preRegistrations[0]?.status, 200);
    const [row] = await app.deps.sql`
      select status, user_id, total_amount, pre_registered_at is not null as pre_registered
      from public.payments where id = ${body.paymentId}`;
    assert.deepEqual({ ...row }, {
      status: "READY",
      user_id: user.id,
      total_amount: 30000,
      pre_registered: true,
    });
  });

  await t.step("chooses the channel for the requested payMethod", async () => {
    const user = await app.createUser();
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const { body } = await app.call("prepare", { user, body: { orderId: order.id, payMethod: "EASY_PAY" } });
    assert.equal(body.channelKey, app.sandbox.channels.live.key);
  });

  await t.step("re-preparing returns the live READY attempt instead of a new one", async () => {
    const user = await app.createUser();
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const first = await app.call("prepare", { user, body: { orderId: order.id } });
    const second = await app.call("prepare", { user, body: { orderId: order.id } });
    assert.equal(second.status, 200);
    assert.equal(second.body.paymentId, first.body.paymentId);
    const [count] = await app.deps
      .sql`select count(*)::int as n from public.payments where order_id = ${order.id}`;
    assert.equal(count?.n, 1);
  });

  await t.step("a failed attempt allows a new one", async () => {
    const user = await app.createUser();
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const first = await app.call("prepare", { user, body: { orderId: order.id } });
    app.sandbox.openPaymentWindow({ ...first.body, channel: "TEST", method: "CARD", customerId: user.id });
    app.sandbox.failPayment(first.body.paymentId, "카드 한도 초과");
    const confirmed = await app.call("confirm", { user, body: { paymentId: first.body.paymentId } });
    assert.equal(confirmed.body.status, "FAILED");
    const second = await app.call("prepare", { user, body: { orderId: order.id } });
    assert.equal(second.status, 200);
    assert.notEqual(second.body.paymentId, first.body.paymentId);
  });

  await t.step("someone else's order and a missing order are the same 404", async () => {
    const owner = await app.createUser();
    const other = await app.createUser();
    const order = await app.createOrder(owner, [{ productId: product, quantity: 1 }]);
    const foreign = await app.call("prepare", { user: other, body: { orderId: order.id } });
    const missing = await app.call("prepare", { user: other, body: { orderId: crypto.randomUUID() } });
    assert.equal(foreign.status, 404);
    assert.deepEqual(foreign.body, missing.body);
    assert.equal(foreign.body.error.code, "not_found");
  });

  await t.step("a paid order is not payable again", async () => {
    const user = await app.createUser();
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const prepared = await app.call("prepare", { user, body: { orderId: order.id } });
    app.sandbox.pay({ ...prepared.body, channel: "TEST", method: "CARD", customerId: user.id });
    assert.equal(
      (await app.call("confirm", { user, body: { paymentId: prepared.body.paymentId } })).status,
      200,
    );
    const again = await app.call("prepare", { user, body: { orderId: order.id } });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "order_not_payable");
  });

  await t.step("an issued virtual account blocks a second attempt until it expires", async () => {
    const user = await app.createUser();
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const prepared = await app.call("prepare", { user, body: { orderId: order.id } });
    app.sandbox.pay({ ...prepared.body, channel: "TEST", method: "VIRTUAL_ACCOUNT", customerId: user.id });
    await app.call("confirm", { user, body: { paymentId: prepared.body.paymentId } });
    const again = await app.call("prepare", { user, body: { orderId: order.id } });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "payment_in_progress");
  });

  await t.step("PortOne down: 503, and the retry pre-registers the same attempt", async () => {
    const user = await app.createUser();
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    app.sandbox.injectFault({ operation: "preRegisterPayment", mode: "status5xx", status: 503, times: 1 });
    const failed = await app.call("prepare", { user, body: { orderId: order.id } });
    assert.equal(failed.status, 503);
    assert.equal(failed.body.error.code, "portone_unavailable");
    const retried = await app.call("prepare", { user, body: { orderId: order.id } });
    assert.equal(retried.status, 200);
    const [row] = await app.deps.sql`
      select count(*)::int as n, bool_and(pre_registered_at is not null) as all_registered
      from public.payments where order_id = ${order.id}`;
    assert.deepEqual({ ...row }, { n: 1, all_registered: true });
  });

  await t.step(
    "Idempotency-Key: same key and body replays, another body is refused, in flight is 409",
    async () => {
      const user = await app.createUser();
      const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
      const otherOrder = await app.createOrder(user, [{ productId: product, quantity: 3 }]);
      const headers = { "idempotency-key": `prepare-${crypto.randomUUID()}` };
      const first = await app.call("prepare", { user, headers, body: { orderId: order.id } });
      const replay = await app.call("prepare", { user, headers, body: { orderId: order.id } });
      assert.equal(replay.status, 200);
      assert.deepEqual(replay.body, first.body);
      assert.equal(replay.headers.get("idempotent-replayed"), "true");
      const reused = await app.call("prepare", { user, headers, body: { orderId: otherOrder.id } });
      assert.equal(reused.status, 422);
      assert.equal(reused.body.error.code, "idempotency_key_reused");

      const slowOrder = await app.createOrder(user, [{ productId: product, quantity: 2 }]);
      app.sandbox.injectFault({ operation: "preRegisterPayment", mode: "latency", latencyMs: 500, times: 1 });
      const slowHeaders = { "idempotency-key": `prepare-${crypto.randomUUID()}` };
      const [a, b] = await Promise.all([
        app.call("prepare", { user, headers: slowHeaders, body: { orderId: slowOrder.id } }),
        new Promise((resolve) => setTimeout(resolve, 100)).then(() =>
          app.call("prepare", { user, headers: slowHeaders, body: { orderId: slowOrder.id } })
        ),
      ]);
      // whichever claimed the key first runs (the 500 ms pre-registration); the other finds it in flight
      const [winner, loser] = a.status === 200 ? [a, b] : [b, a];
      assert.equal(winner.status, 200);
      assert.equal(loser.status, 409);
      assert.equal(loser.body.error.code, "request_in_progress");
    },
  );

  await t.step("a 503 is not stored under the Idempotency-Key, so the retry runs", async () => {
    const user = await app.createUser();
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const headers = { "idempotency-key": `prepare-${crypto.randomUUID()}` };
    app.sandbox.injectFault({ operation: "preRegisterPayment", mode: "html502", times: 1 });
    assert.equal((await app.call("prepare", { user, headers, body: { orderId: order.id } })).status, 503);
    const retried = await app.call("prepare", { user, headers, body: { orderId: order.id } });
    assert.equal(retried.status, 200);
    assert.equal(retried.headers.get("idempotent-replayed"), null);
  });
});
