import assert from "node:assert/strict";
import { startTestApp, type TestApp, testReconcileSecret, type TestUser } from "./support/app.ts";

/** `token: null` sends no Authorization header at all. */
function reconcile(
  app: TestApp,
  body: Record<string, unknown> = {},
  token: string | null = testReconcileSecret,
) {
  return app.call("reconcile", token === null ? { body } : { body, token });
}

async function prepared(app: TestApp, price = 15000) {
  const user = await app.createUser();
  const product = await app.createProduct({ price, name: "대사 테스트" });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
  return { user, orderId: order.id, checkout };
}

async function state(app: TestApp, paymentId: string) {
  const [row] = await app.deps.sql`
    select p.status, p.cancelled_amount, o.status as order_status,
           (select count(*)::int from public.payment_events e where e.payment_id = p.id and e.source = 'reconcile') as events
    from public.payments p join public.orders o on o.id = p.order_id where p.id = ${paymentId}`;
  return { ...row };
}

function pay(
  app: TestApp,
  user: TestUser,
  checkout: Record<string, unknown>,
  method: "CARD" | "VIRTUAL_ACCOUNT" = "CARD",
) {
  return app.sandbox.pay({
    ...(checkout as { paymentId: string; orderName: string; totalAmount: number; currency: string }),
    channel: "TEST",
    method,
    customerId: user.id,
  });
}

Deno.test("reconcile", async (t) => {
  await using app = await startTestApp();

  await t.step("refuses callers without the secret, before touching anything", async () => {
    const before = app.sandbox.requests().length;
    for (const token of [null, "wrong-secret", `${testReconcileSecret}x`]) {
      const { status, body } = await reconcile(app, {}, token);
      assert.equal(status, 401);
      assert.equal(body.error.code, "unauthorized");
    }
    assert.equal(app.sandbox.requests().length, before);
  });

  await t.step("a payment whose webhook and confirm never came is applied once", async () => {
    const { user, checkout } = await prepared(app);
    pay(app, user, checkout);
    assert.equal((await state(app, checkout.paymentId)).status, "READY");
    const { status, body } = await reconcile(app);
    assert.equal(status, 200, JSON.stringify(body));
    // the event log (PAID) or the scan of the window, whichever reads it first
    assert.ok(body.events.applied + body.portone.applied >= 1, JSON.stringify(body));
    assert.deepEqual(await state(app, checkout.paymentId), {
      status: "PAID",
      cancelled_amount: 0,
      order_status: "paid",
      events: 1,
    });
    const again = await reconcile(app);
    assert.equal(again.body.portone.applied + again.body.events.applied, 0, "a second run changes nothing");
    assert.equal((await state(app, checkout.paymentId)).events, 1);
  });

  await t.step("a refund made in PortOne's console is recorded", async () => {
    const { user, checkout } = await prepared(app);
    pay(app, user, checkout);
    await app.call("confirm", { user, body: { paymentId: checkout.paymentId } });
    await app.deps.portone.cancelPayment({
      paymentId: checkout.paymentId,
      amount: 5000,
      reason: "콘솔 환불",
      requester: "ADMIN",
      currentCancellableAmount: 15000,
      idempotencyKey: crypto.randomUUID(),
    });
    await reconcile(app);
    assert.deepEqual(await state(app, checkout.paymentId), {
      status: "PARTIAL_CANCELLED",
      cancelled_amount: 5000,
      order_status: "partial_cancelled",
      events: 1,
    });
    const [cancellation] = await app.deps.sql`
      select requester, status, amount from public.payment_cancellations where payment_id = ${checkout.paymentId}`;
    assert.deepEqual({ ...cancellation }, { requester: "PORTONE", status: "SUCCEEDED", amount: 5000 });
  });

  await t.step("payments we never prepared are counted, not imported", async () => {
    const strangerId = `pay_stranger_${crypto.randomUUID().slice(0, 8)}`;
    app.sandbox.pay({
      paymentId: strangerId,
      orderName: "남의 결제",
      totalAmount: 1000,
      currency: "KRW",
      channel: "TEST",
      method: "CARD",
    });
    const { body } = await reconcile(app);
    assert.ok(body.portone.notOurs >= 1);
    const rows = await app.deps.sql`select 1 from public.payments where id = ${strangerId}`;
    assert.equal(rows.length, 0);
  });

  await t.step("an abandoned cancellation is finished", async () => {
    const { user, checkout } = await prepared(app);
    pay(app, user, checkout);
    await app.call("confirm", { user, body: { paymentId: checkout.paymentId } });
    const admin = await app.createUser({ admin: true });
    app.sandbox.injectFault({ operation: "cancelPayment", mode: "reset", times: 1 });
    const lost = await app.call("cancel", {
      user: admin,
      body: { paymentId: checkout.paymentId, amount: 4000, reason: "응답 유실" },
      headers: { "idempotency-key": crypto.randomUUID() },
    });
    assert.equal(lost.status, 503);
    await app.deps.sql`
      update public.payment_cancellations set requested_at = now() - interval '10 minutes'
      where payment_id = ${checkout.paymentId}`;
    const { body } = await reconcile(app);
    assert.ok(body.cancellations.cleared >= 1, JSON.stringify(body.cancellations));
    assert.equal((await state(app, checkout.paymentId)).cancelled_amount, 4000);
    const refunded = app.sandbox.refunds().filter((r) => r.paymentId === checkout.paymentId);
    assert.deepEqual(refunded.map((r) => r.amount), [4000]);
  });

  await t.step("PortOne unreachable while paging → 503 so the scheduler retries", async () => {
    app.sandbox.injectFault({
      operation: "getAllPaymentsByCursor",
      mode: "status5xx",
      status: 503,
      times: 1,
    });
    const { status, body } = await reconcile(app);
    assert.equal(status, 503);
    assert.equal(body.error.code, "portone_unavailable");
  });

  await t.step("bad input → 400, nothing done", async () => {
    for (
      const bad of [{ lookbackMinutes: -1 }, { lookbackMinutes: 1.5 }, { maxPayments: 0 }, { extra: true }]
    ) {
      const before = app.sandbox.requests().length;
      const { status, body } = await reconcile(app, bad);
      assert.equal(status, 400, JSON.stringify(bad));
      assert.equal(body.error.code, "invalid_request");
      assert.equal(app.sandbox.requests().length, before);
    }
  });
});

Deno.test("reconcile re-fetches our waiting payments even outside the look-back window", async () => {
  // PortOne's clock says these payments are two days old: the 1-minute window of the scan cannot see them
  await using app = await startTestApp({
    sandbox: { clock: () => new Date(Date.now() - 2 * 24 * 3600_000) },
  });
  const { user, checkout } = await prepared(app);
  pay(app, user, checkout, "VIRTUAL_ACCOUNT");
  assert.equal(
    (await app.call("confirm", { user, body: { paymentId: checkout.paymentId } })).body.status,
    "VIRTUAL_ACCOUNT_ISSUED",
  );
  app.sandbox.depositVirtualAccount(checkout.paymentId);
  const { body } = await reconcile(app, { lookbackMinutes: 1 });
  assert.equal(body.portone.scanned, 0);
  assert.ok(body.waiting.applied >= 1);
  assert.deepEqual(await state(app, checkout.paymentId), {
    status: "PAID",
    cancelled_amount: 0,
    order_status: "paid",
    events: 1,
  });
});
