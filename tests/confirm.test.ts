import assert from "node:assert/strict";
import {
  capturedLogLines,
  startTestApp,
  type TestApp,
  type TestOrder,
  type TestUser,
} from "./support/app.ts";

/** A prepared payment of a fresh order, ready for the sandbox's payment window. */
async function preparedPayment(app: TestApp, price = 27000, payMethod?: string) {
  const user = await app.createUser();
  const product = await app.createProduct({ price, name: "확인 테스트" });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const prepared = await app.call("prepare", {
    user,
    body: payMethod ? { orderId: order.id, payMethod } : { orderId: order.id },
  });
  assert.equal(prepared.status, 200);
  return {
    user,
    order,
    checkout: prepared.body as {
      paymentId: string;
      orderName: string;
      totalAmount: number;
      currency: string;
    },
  };
}

async function paymentState(app: TestApp, paymentId: string) {
  const [row] = await app.deps.sql`
    select p.status, p.paid_amount, p.mismatch_reason, p.method_type, p.channel_type, o.status as order_status,
           o.paid_payment_id,
           (select count(*)::int from public.payment_events e where e.payment_id = p.id and e.source <> 'prepare') as events
    from public.payments p join public.orders o on o.id = p.order_id where p.id = ${paymentId}`;
  return { ...row };
}

function confirm(app: TestApp, user: TestUser, paymentId: string) {
  return app.call("confirm", { user, body: { paymentId } });
}

Deno.test("confirm", async (t) => {
  await using app = await startTestApp();

  await t.step("card happy path: PAID, the order paid, one audit event", async () => {
    const { user, order, checkout } = await preparedPayment(app);
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
    const { status, body } = await confirm(app, user, checkout.paymentId);
    assert.equal(status, 200);
    assert.deepEqual(body, {
      paymentId: checkout.paymentId,
      status: "PAID",
      order: { id: order.id, status: "paid" },
    });
    assert.deepEqual(await paymentState(app, checkout.paymentId), {
      status: "PAID",
      paid_amount: 27000,
      mismatch_reason: null,
      method_type: "CARD",
      channel_type: "TEST",
      order_status: "paid",
      paid_payment_id: checkout.paymentId,
      events: 1,
    });
  });

  await t.step("confirming again changes nothing", async () => {
    const { user, checkout } = await preparedPayment(app);
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
    await confirm(app, user, checkout.paymentId);
    const again = await confirm(app, user, checkout.paymentId);
    assert.equal(again.body.status, "PAID");
    assert.equal((await paymentState(app, checkout.paymentId)).events, 1);
  });

  await t.step("easy pay through the LIVE channel", async () => {
    const { user, checkout } = await preparedPayment(app, 9900, "EASY_PAY");
    app.sandbox.pay({ ...checkout, channel: "LIVE", method: "EASY_PAY", customerId: user.id });
    const { body } = await confirm(app, user, checkout.paymentId);
    assert.equal(body.status, "PAID");
    const state = await paymentState(app, checkout.paymentId);
    assert.equal(state.method_type, "EASY_PAY");
    assert.equal(state.channel_type, "LIVE");
  });

  await t.step("virtual account: issued (order still pending), then deposited (PAID)", async () => {
    const { user, order, checkout } = await preparedPayment(app, 55000);
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "VIRTUAL_ACCOUNT", customerId: user.id });
    const issued = await confirm(app, user, checkout.paymentId);
    assert.equal(issued.status, 200);
    assert.equal(issued.body.status, "VIRTUAL_ACCOUNT_ISSUED");
    assert.deepEqual(issued.body.order, { id: order.id, status: "pending" });
    const portonePayment = app.sandbox.getPayment(checkout.paymentId) as {
      method?: { accountNumber?: string; bank?: string };
    };
    const portoneMethod = portonePayment.method ?? {};
    assert.equal(issued.body.virtualAccount.accountNumber, portoneMethod.accountNumber);
    assert.equal(issued.body.virtualAccount.bank, portoneMethod.bank);
    assert.ok(issued.body.virtualAccount.expiresAt);

    app.sandbox.depositVirtualAccount(checkout.paymentId);
    const paid = await confirm(app, user, checkout.paymentId);
    assert.equal(paid.body.status, "PAID");
    assert.equal(paid.body.order.status, "paid");
    assert.equal((await paymentState(app, checkout.paymentId)).events, 2);
  });

  await t.step("a payment PortOne has not seen yet stays READY", async () => {
    const { user, checkout } = await preparedPayment(app);
    const { status, body } = await confirm(app, user, checkout.paymentId);
    assert.equal(status, 200);
    assert.equal(body.status, "READY");
  });

  await t.step("pre-registration makes the payment window refuse a tampered amount", async () => {
    const { user, order, checkout } = await preparedPayment(app);
    app.sandbox.pay({ ...checkout, totalAmount: 100, channel: "TEST", method: "CARD", customerId: user.id });
    const { body } = await confirm(app, user, checkout.paymentId);
    assert.equal(body.status, "FAILED");
    assert.deepEqual(body.order, { id: order.id, status: "pending" });
  });

  // Pre-registration is only a first guard: these pay attempts that were never pre-registered (PortOne was
  // down during prepare) prove that our own after-payment check refuses them.
  async function unregisteredPayment(): Promise<{ user: TestUser; order: TestOrder; paymentId: string }> {
    const user = await app.createUser();
    const product = await app.createProduct({ price: 27000, name: "사전등록 없음" });
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    app.sandbox.injectFault({ operation: "preRegisterPayment", mode: "status5xx", status: 500, times: 1 });
    assert.equal((await app.call("prepare", { user, body: { orderId: order.id } })).status, 503);
    const [row] = await app.deps.sql<
      { id: string }[]
    >`select id from public.payments where order_id = ${order.id}`;
    return { user, order, paymentId: row!.id };
  }

  for (
    const [name, tamper] of [
      ["a tampered amount", { totalAmount: 100, currency: "KRW" }],
      ["a wrong currency", { totalAmount: 27000, currency: "USD" }],
    ] as const
  ) {
    await t.step(`${name} is refused with 409, flagged and audited, and the order stays unpaid`, async () => {
      const { user, order, paymentId } = await unregisteredPayment();
      app.sandbox.pay({
        paymentId,
        orderName: order.orderName,
        ...tamper,
        channel: "TEST",
        method: "CARD",
        customerId: user.id,
      });
      const { status, body } = await confirm(app, user, paymentId);
      assert.equal(status, 409);
      assert.equal(body.error.code, "payment_mismatch");
      const state = await paymentState(app, paymentId);
      assert.equal(state.status, "PAID");
      assert.equal(state.order_status, "pending");
      assert.equal(state.paid_payment_id, null);
      assert.match(
        state.mismatch_reason,
        name === "a wrong currency" ? /currency_mismatch/ : /amount_mismatch/,
      );
      const events = await app.deps
        .sql`select kind, source from public.payment_events where payment_id = ${paymentId} and source = 'confirm'`;
      assert.deepEqual(events.map((e) => ({ ...e })), [{ kind: "mismatch", source: "confirm" }]);
      // asking again does not add events or pay the order
      assert.equal((await confirm(app, user, paymentId)).status, 409);
      assert.equal((await paymentState(app, paymentId)).events, 1);
    });
  }

  await t.step("a different order name is refused as a mismatch", async () => {
    const { user, checkout } = await preparedPayment(app);
    app.sandbox.pay({
      ...checkout,
      orderName: "다른 상품",
      channel: "TEST",
      method: "CARD",
      customerId: user.id,
    });
    const { status, body } = await confirm(app, user, checkout.paymentId);
    assert.equal(status, 409);
    assert.equal(body.error.code, "payment_mismatch");
    assert.equal((await paymentState(app, checkout.paymentId)).mismatch_reason, "order_name_mismatch");
  });

  await t.step("someone else's payment and a missing one are the same 404", async () => {
    const { user, checkout } = await preparedPayment(app);
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
    const stranger = await app.createUser();
    const foreign = await confirm(app, stranger, checkout.paymentId);
    const missing = await confirm(app, stranger, "pay_00000000000000000000000000000000");
    assert.equal(foreign.status, 404);
    assert.deepEqual(foreign.body, missing.body);
    assert.equal((await paymentState(app, checkout.paymentId)).status, "READY");
  });

  await t.step("20 concurrent confirms from 4 isolates: one transition, one audit event", async () => {
    const { user, checkout } = await preparedPayment(app);
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
    const isolates = [0, 1, 2, 3].map(() => app.isolate());
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          isolates[i % 4]!.functions.confirm.fetch(
            new Request("http://127.0.0.1/functions/v1/confirm", {
              method: "POST",
              headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
              body: JSON.stringify({ paymentId: checkout.paymentId }),
            }),
          ).then(async (r) => ({ status: r.status, body: await r.json() }))),
      );
      assert.deepEqual(new Set(results.map((r) => `${r.status} ${r.body.status}`)), new Set(["200 PAID"]));
    } finally {
      await Promise.all(isolates.map((i) => i.close()));
    }
    const events = await app.deps.sql`
      select kind, from_status, to_status from public.payment_events
      where payment_id = ${checkout.paymentId} and source = 'confirm'`;
    assert.deepEqual(events.map((e) => ({ ...e })), [{
      kind: "status_changed",
      from_status: "READY",
      to_status: "PAID",
    }]);
  });

  await t.step("no log line carries the API secret, the webhook secret or a user's token", async () => {
    const { user, checkout } = await preparedPayment(app);
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
    await confirm(app, user, checkout.paymentId);
    assert.ok(capturedLogLines.length > 0);
    for (const secret of [app.sandbox.apiSecret, app.sandbox.webhookSecret, user.token]) {
      assert.ok(!capturedLogLines.some((line) => line.includes(secret)), "a log line leaks a secret");
    }
  });

  for (
    const [name, fault] of [
      ["a PortOne 5xx", { mode: "status5xx", status: 500 }],
      ["an HTML 502 from a proxy", { mode: "html502" }],
      ["a dropped connection", { mode: "reset" }],
      ["a PortOne that never answers", { mode: "hang" }],
    ] as const
  ) {
    await t.step(`${name}: 503 portone_unavailable and no state change, then success on retry`, async () => {
      const { user, checkout } = await preparedPayment(app);
      app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
      app.sandbox.injectFault({ operation: "getPayment", ...fault, times: 1 });
      const failed = await confirm(app, user, checkout.paymentId);
      assert.equal(failed.status, 503);
      assert.equal(failed.body.error.code, "portone_unavailable");
      assert.deepEqual(await paymentState(app, checkout.paymentId), {
        status: "READY",
        paid_amount: 0,
        mismatch_reason: null,
        method_type: null,
        channel_type: null,
        order_status: "pending",
        paid_payment_id: null,
        events: 0,
      });
      const retried = await confirm(app, user, checkout.paymentId);
      assert.equal(retried.status, 200);
      assert.equal(retried.body.status, "PAID");
    });
  }
});

Deno.test("confirm in a live store (PORTONE_STORE_MODE=live): a TEST-channel payment never pays the order", async () => {
  await using app = await startTestApp({ env: { PORTONE_STORE_MODE: "live" } });
  const { user, order, checkout } = await preparedPayment(app);
  app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
  const { status, body } = await confirm(app, user, checkout.paymentId);
  assert.equal(status, 409);
  assert.equal(body.error.code, "payment_mismatch");
  const state = await paymentState(app, checkout.paymentId);
  assert.equal(state.mismatch_reason, "test_channel");
  assert.equal(state.order_status, "pending");

  // the store's LIVE channel is configured for easy pay
  const live = await preparedPayment(app, 27000, "EASY_PAY");
  app.sandbox.pay({ ...live.checkout, channel: "LIVE", method: "CARD", customerId: live.user.id });
  const ok = await confirm(app, live.user, live.checkout.paymentId);
  assert.equal(ok.status, 200);
  assert.equal(ok.body.order.status, "paid");
  assert.notEqual(order.id, live.order.id);
});
