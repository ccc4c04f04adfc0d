/**
 * One paying attempt per order across both ways to pay: a saved-card charge racing a payment made in the
 * browser's payment window (before our confirm or PortOne's webhook arrived) never charges the order twice.
 */
import assert from "node:assert/strict";
import { startTestApp, type TestApp, type TestUser } from "./support/app.ts";

async function setup(app: TestApp) {
  const user = await app.createUser();
  const billingKey = app.sandbox.issueBillingKey({ customerId: user.id });
  const registered = await app.call("billing-key", { user, body: { billingKey } });
  assert.equal(registered.status, 200, JSON.stringify(registered.body));
  const product = await app.createProduct({ price: 25000, name: "경쟁 주문" });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const prepared = await app.call("prepare", { user, body: { orderId: order.id } });
  assert.equal(prepared.status, 200);
  return { user, keyId: registered.body.id as string, order, checkout: prepared.body };
}

function payWithSavedCard(app: TestApp, user: TestUser, keyId: string, orderId: string) {
  return app.call("billing-key", {
    user,
    path: `/${keyId}/pay`,
    body: { orderId },
    headers: { "idempotency-key": `race-${crypto.randomUUID()}` },
  });
}

/** What PortOne (the sandbox) holds for every attempt we made for the order. */
async function paidAtPortOne(app: TestApp, orderId: string): Promise<string[]> {
  const ids = await app.deps.sql<
    { id: string }[]
  >`select id from public.payments where order_id = ${orderId}`;
  return ids.flatMap(({ id }) => {
    const payment = app.sandbox.getPayment(id) as { status?: string } | undefined;
    return payment?.status === "PAID" ? [id] : [];
  });
}

Deno.test("saved card vs. the payment window", async (t) => {
  await using app = await startTestApp();

  await t.step("paid in the window, then the saved card → 409, one PAID payment, order paid", async () => {
    const { user, keyId, order, checkout } = await setup(app);
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
    const charged = await payWithSavedCard(app, user, keyId, order.id);
    assert.equal(charged.status, 409, JSON.stringify(charged.body));
    assert.equal(charged.body.error.code, "order_not_payable");
    assert.deepEqual(await paidAtPortOne(app, order.id), [checkout.paymentId]);
    const [row] = await app.deps
      .sql`select status, paid_payment_id from public.orders where id = ${order.id}`;
    assert.deepEqual({ ...row }, { status: "paid", paid_payment_id: checkout.paymentId });
  });

  await t.step("pending in the window → 409 payment_in_progress, nothing charged", async () => {
    const { user, keyId, order, checkout } = await setup(app);
    app.sandbox.setPayPending({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
    const charged = await payWithSavedCard(app, user, keyId, order.id);
    assert.equal(charged.status, 409);
    assert.equal(charged.body.error.code, "payment_in_progress");
    assert.deepEqual(await paidAtPortOne(app, order.id), []);
  });

  await t.step("an open virtual account from the window → 409 payment_in_progress", async () => {
    const { user, keyId, order, checkout } = await setup(app);
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "VIRTUAL_ACCOUNT", customerId: user.id });
    const charged = await payWithSavedCard(app, user, keyId, order.id);
    assert.equal(charged.status, 409);
    assert.equal(charged.body.error.code, "payment_in_progress");
    app.sandbox.depositVirtualAccount(checkout.paymentId);
    assert.deepEqual(await paidAtPortOne(app, order.id), [checkout.paymentId]);
  });

  await t.step(
    "a window opened but never paid: the saved card pays under its paymentId, the window cannot",
    async () => {
      const { user, keyId, order, checkout } = await setup(app);
      app.sandbox.openPaymentWindow({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
      const charged = await payWithSavedCard(app, user, keyId, order.id);
      assert.equal(charged.status, 200, JSON.stringify(charged.body));
      assert.equal(charged.body.order.status, "paid");
      assert.equal(charged.body.paymentId, checkout.paymentId, "one paymentId per order");
      assert.throws(() =>
        app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id })
      );
      assert.deepEqual(await paidAtPortOne(app, order.id), [checkout.paymentId]);
      const events = await app.deps.sql<{ source: string; kind: string }[]>`
        select source, kind from public.payment_events where payment_id = ${checkout.paymentId} order by id`;
      assert.deepEqual(events.map((e) => `${e.source}:${e.kind}`), [
        "prepare:created",
        "billing:taken_over_by_saved_card",
        "billing:status_changed",
      ]);
    },
  );

  await t.step(
    "paying in the window and with the saved card at the same moment: at most one PAID",
    async () => {
      const outcomes = { savedCard: 0, window: 0 };
      for (let run = 0; run < 30; run++) {
        const { user, keyId, order, checkout } = await setup(app);
        app.sandbox.openPaymentWindow({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
        // the window's payment lands at a random moment of the saved-card request
        const delay = (run % 10) * 60;
        const [charged, windowPaid] = await Promise.all([
          payWithSavedCard(app, user, keyId, order.id),
          new Promise((resolve) => setTimeout(resolve, delay)).then(() => {
            try {
              app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
              return true;
            } catch {
              return false; // PortOne refuses: the paymentId is already paid
            }
          }),
        ]);
        const paid = await paidAtPortOne(app, order.id);
        assert.equal(paid.length, 1, `run ${run}: ${paid.length} PAID payments for one order`);
        assert.equal(charged.status === 200, !windowPaid, `run ${run}: exactly one way paid`);
        if (!windowPaid) outcomes.savedCard++;
        else {
          assert.equal(charged.status, 409, JSON.stringify(charged.body));
          outcomes.window++;
        }
        await app.call("confirm", { user, body: { paymentId: paid[0] } });
        const [row] = await app.deps.sql`
        select status, paid_payment_id from public.orders where id = ${order.id}`;
        assert.deepEqual({ ...row }, { status: "paid", paid_payment_id: paid[0] });
      }
      // both orders of events happened, so both paths were exercised
      assert.ok(outcomes.savedCard > 0 && outcomes.window > 0, JSON.stringify(outcomes));
    },
  );
});
