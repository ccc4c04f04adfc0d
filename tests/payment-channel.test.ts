/**
 * Which channel may pay an order: a LIVE one unless the configuration says this is a test store, and only
 * the channel we issued for that very attempt (prepare's, or the saved card's).
 */
import assert from "node:assert/strict";
import { startTestApp, type TestApp } from "./support/app.ts";

async function preparedPayment(app: TestApp, payMethod?: "CARD" | "EASY_PAY") {
  const user = await app.createUser();
  const product = await app.createProduct({ price: 25000, name: "채널 테스트" });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const prepared = await app.call("prepare", {
    user,
    body: payMethod ? { orderId: order.id, payMethod } : { orderId: order.id },
  });
  assert.equal(prepared.status, 200, JSON.stringify(prepared.body));
  return { user, order, checkout: prepared.body };
}

async function recorded(app: TestApp, paymentId: string) {
  const [row] = await app.deps.sql<
    { status: string; mismatch_reason: string | null; order_status: string }[]
  >`
    select p.status, p.mismatch_reason, o.status as order_status
    from public.payments p join public.orders o on o.id = p.order_id where p.id = ${paymentId}`;
  return { ...row };
}

Deno.test("default configuration (no PORTONE_STORE_MODE): a TEST-channel payment leaves the order unpaid", async () => {
  await using app = await startTestApp({ env: { PORTONE_STORE_MODE: undefined } });
  assert.equal(app.deps.config.portone.requireLiveChannel, true);
  // a stale test key (a staging build, an old JS bundle) is what the store was configured with here
  const { user, checkout } = await preparedPayment(app);
  app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
  const confirmed = await app.call("confirm", { user, body: { paymentId: checkout.paymentId } });
  assert.equal(confirmed.status, 409);
  assert.equal(confirmed.body.error.code, "payment_mismatch");
  const row = await recorded(app, checkout.paymentId);
  assert.equal(row.status, "PAID");
  assert.equal(row.order_status, "pending");
  assert.match(row.mismatch_reason ?? "", /test_channel/);
});

Deno.test("default configuration: the configured LIVE channel pays the order", async () => {
  await using app = await startTestApp({ env: { PORTONE_STORE_MODE: undefined } });
  const { user, order, checkout } = await preparedPayment(app, "EASY_PAY");
  app.sandbox.pay({ ...checkout, channel: "LIVE", method: "EASY_PAY", customerId: user.id });
  const confirmed = await app.call("confirm", { user, body: { paymentId: checkout.paymentId } });
  assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
  assert.deepEqual(confirmed.body.order, { id: order.id, status: "paid" });
});

Deno.test("a payment through a channel not issued for the attempt is flagged, also through the webhook", async (t) => {
  // a test store whose only configured channel is the TEST one: the store's LIVE channel is not ours to use
  await using app = await startTestApp({ env: { PORTONE_CHANNEL_KEYS: "{}" } });

  await t.step("confirm", async () => {
    const { user, checkout } = await preparedPayment(app);
    assert.equal(checkout.channelKey, app.sandbox.channels.test.key);
    app.sandbox.pay({ ...checkout, channel: "LIVE", method: "CARD", customerId: user.id });
    const confirmed = await app.call("confirm", { user, body: { paymentId: checkout.paymentId } });
    assert.equal(confirmed.status, 409);
    assert.equal(confirmed.body.error.code, "payment_mismatch");
    const row = await recorded(app, checkout.paymentId);
    assert.deepEqual(row, { status: "PAID", mismatch_reason: "channel_mismatch", order_status: "pending" });
    const [event] = await app.deps.sql<{ kind: string }[]>`
      select kind from public.payment_events where payment_id = ${checkout.paymentId} and kind = 'mismatch'`;
    assert.equal(event?.kind, "mismatch");
  });

  await t.step("webhook", async () => {
    app.serveWebhook();
    const { user, checkout } = await preparedPayment(app);
    app.sandbox.pay({ ...checkout, channel: "LIVE", method: "CARD", customerId: user.id });
    await app.sandbox.idle();
    const row = await recorded(app, checkout.paymentId);
    assert.deepEqual(row, { status: "PAID", mismatch_reason: "channel_mismatch", order_status: "pending" });
  });

  await t.step("the channel issued for the attempt pays", async () => {
    const { user, checkout } = await preparedPayment(app);
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
    const confirmed = await app.call("confirm", { user, body: { paymentId: checkout.paymentId } });
    assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
    assert.equal(confirmed.body.order.status, "paid");
  });
});
