import assert from "node:assert/strict";
import { applySnapshot } from "../shared/payments/sync.ts";
import { parsePayment, type PaymentSnapshot } from "../shared/portone/snapshot.ts";
import { startTestApp, type TestApp } from "./support/app.ts";

const at = (iso: string) => new Date(iso);

type Snapshot = Pick<PaymentSnapshot, "status" | "statusChangedAt" | "cancelledAmount" | "paidAmount">;
interface Held {
  status: PaymentSnapshot["status"];
  status_changed_at: Date | null;
  cancelled_amount: number;
  paid_amount: number;
}

/** The watermark rule of the apply (private.snapshot_is_newer), asked of the database. */
async function isNewerSnapshot(app: TestApp, snap: Snapshot, held: Held): Promise<boolean> {
  const [row] = await app.deps.sql<{ newer: boolean }[]>`
    select private.snapshot_is_newer(${snap.status}, ${snap.statusChangedAt}::timestamptz,
      ${snap.cancelledAmount}, ${snap.paidAmount}, ${held.status}, ${held.status_changed_at},
      ${held.cancelled_amount}, ${held.paid_amount}) as newer`;
  return row!.newer;
}

/** The comparison with our order (private.snapshot_mismatches), asked of the database. */
async function verifySnapshot(
  app: TestApp,
  snapshot: PaymentSnapshot,
  expected: {
    storeId: string;
    totalAmount: number;
    taxFreeAmount: number;
    currency: string;
    orderName: string;
    channelKeys: string[];
  },
  requireLiveChannel: boolean,
): Promise<string[]> {
  const [row] = await app.deps.sql<{ reasons: string[] }[]>`
    select private.snapshot_mismatches(${app.deps.sql.json(snapshot as never)}, ${expected.storeId},
      ${expected.totalAmount}, ${expected.taxFreeAmount}, ${expected.currency}, ${expected.orderName},
      ${expected.channelKeys}::text[], ${requireLiveChannel}) as reasons`;
  return row!.reasons;
}

Deno.test("the apply orders snapshots by statusChangedAt, then by progress within the same instant", async () => {
  const app = await startTestApp();
  try {
    const held: Held = {
      status: "PAID",
      status_changed_at: at("2026-11-26T10:00:00Z"),
      cancelled_amount: 0,
      paid_amount: 1000,
    };
    const snap = (status: PaymentSnapshot["status"], statusChangedAt: string, cancelledAmount = 0) => ({
      status,
      statusChangedAt,
      cancelledAmount,
      paidAmount: 1000,
    });
    const newer = (s: Snapshot, h: Held) => isNewerSnapshot(app, s, h);
    assert.equal(await newer(snap("PAID", "2026-11-26T10:00:01Z"), held), true);
    assert.equal(await newer(snap("CANCELLED", "2026-11-26T09:59:59Z", 1000), held), false);
    assert.equal(await newer(snap("PARTIAL_CANCELLED", "2026-11-26T10:00:00Z", 100), held), true);
    assert.equal(await newer(snap("READY", "2026-11-26T10:00:00Z"), held), false);
    assert.equal(await newer(snap("PAID", "2026-11-26T10:00:00.000+00:00"), held), false);
    assert.equal(await newer(snap("PAID", "2026-11-26T19:00:00+09:00"), held), false, "the same instant");
    const partial = { ...held, status: "PARTIAL_CANCELLED" as const, cancelled_amount: 100 };
    assert.equal(await newer(snap("PARTIAL_CANCELLED", "2026-11-26T10:00:00Z", 300), partial), true);
    assert.equal(await newer(snap("PARTIAL_CANCELLED", "2026-11-26T10:00:00Z", 100), partial), false);
    assert.equal(
      await newer(snap("READY", "2000-01-01T00:00:00Z"), { ...held, status_changed_at: null }),
      true,
    );
  } finally {
    await app.close();
  }
});

Deno.test("the apply names every difference from the order", async () => {
  const app = await startTestApp();
  try {
    const base = parsePayment({
      status: "PAID",
      id: "pay_x",
      storeId: "store-a",
      orderName: "상품",
      currency: "KRW",
      statusChangedAt: "2026-11-26T10:00:00Z",
      paidAt: "2026-11-26T10:00:00Z",
      amount: { total: 1000, taxFree: 0, paid: 1000, cancelled: 0, cancelledTaxFree: 0 },
      channel: { type: "TEST", key: "channel-key-a", pgProvider: "TOSSPAYMENTS" },
    });
    assert.equal(base.kind, "payment");
    if (base.kind !== "payment") return;
    const expected = {
      storeId: "store-a",
      totalAmount: 1000,
      taxFreeAmount: 0,
      currency: "KRW",
      orderName: "상품",
      channelKeys: ["channel-key-a"],
    };
    const verify = (s: PaymentSnapshot, e: typeof expected, live: boolean) => verifySnapshot(app, s, e, live);
    assert.deepEqual(await verify(base, expected, false), []);
    assert.deepEqual(await verify(base, expected, true), ["test_channel"]);
    // the channel must be the one issued for the attempt; an attempt without one matches no channel
    assert.deepEqual(await verify(base, { ...expected, channelKeys: ["channel-key-b"] }, false), [
      "channel_mismatch",
    ]);
    assert.deepEqual(await verify(base, { ...expected, channelKeys: [] }, false), ["channel_mismatch"]);
    assert.deepEqual(await verify({ ...base, channelKey: null }, expected, false), ["channel_mismatch"]);
    assert.deepEqual(
      await verify(base, {
        storeId: "store-b",
        totalAmount: 2000,
        taxFreeAmount: 500,
        currency: "USD",
        orderName: "다른",
        channelKeys: ["channel-key-b", "channel-key-a"],
      }, false),
      ["store_mismatch", "amount_mismatch", "tax_free_mismatch", "currency_mismatch", "order_name_mismatch"],
    );
    assert.deepEqual(await verify({ ...base, status: "FAILED" }, { ...expected, totalAmount: 1 }, true), []);
  } finally {
    await app.close();
  }
});

Deno.test("parsePayment() keeps unknown statuses out and strips personal data", () => {
  assert.deepEqual(
    parsePayment({
      status: "SOMETHING_NEW",
      id: "pay_y",
      storeId: "s",
      orderName: "o",
      currency: "KRW",
      statusChangedAt: "2026-11-26T10:00:00Z",
      amount: { total: 1 },
    }),
    { kind: "unrecognized", id: "pay_y", status: "SOMETHING_NEW" },
  );
  const parsed = parsePayment({
    status: "PAID",
    id: "pay_z",
    storeId: "s",
    orderName: "o",
    currency: "KRW",
    statusChangedAt: "2026-11-26T10:00:00Z",
    paidAt: "2026-11-26T10:00:00Z",
    amount: { total: 1000 },
    billingKey: "billing-key-secret",
    customer: { name: "홍길동", phoneNumber: "01012345678" },
    method: { type: "PaymentMethodCard", card: { number: "4111111111111111", issuer: "SHINHAN" } },
  });
  const stored = JSON.stringify(parsed.kind === "payment" ? parsed.stored : null);
  for (const secret of ["billing-key-secret", "홍길동", "01012345678", "4111111111111111"]) {
    assert.ok(!stored.includes(secret), `stored snapshot contains ${secret}`);
  }
  assert.ok(stored.includes("****1111"));
});

/** PortOne's view of one payment at each step of its life, all stamped with the same clock. */
async function lifeOfAPayment(app: TestApp) {
  const user = await app.createUser();
  const product = await app.createProduct({ price: 10000 });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
  const snapshot = async () => {
    const parsed = parsePayment(await app.deps.portone.getPayment(checkout.paymentId));
    assert.equal(parsed.kind, "payment");
    return parsed as PaymentSnapshot;
  };
  app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
  const paid = await snapshot();
  const cancel = (amount: number, currentCancellableAmount: number) =>
    app.deps.portone.cancelPayment({
      paymentId: checkout.paymentId,
      amount,
      reason: "테스트",
      requester: "ADMIN",
      currentCancellableAmount,
      idempotencyKey: crypto.randomUUID(),
    });
  await cancel(3000, 10000);
  const partial = await snapshot();
  await cancel(7000, 7000);
  const cancelled = await snapshot();
  return { paymentId: checkout.paymentId as string, orderId: order.id, paid, partial, cancelled };
}

async function stored(app: TestApp, paymentId: string) {
  const [row] = await app.deps.sql`
    select p.status, p.cancelled_amount, p.cancellable_amount, o.status as order_status,
           (select count(*)::int from public.payment_events e where e.payment_id = p.id and e.source = 'webhook') as events,
           (select count(*)::int from public.payment_cancellations c where c.payment_id = p.id and c.status = 'SUCCEEDED') as cancellations
    from public.payments p join public.orders o on o.id = p.order_id where p.id = ${paymentId}`;
  return { ...row };
}

Deno.test("applySnapshot() converges on the newest state whatever order snapshots arrive in", async (t) => {
  const fixedClock = () => new Date("2026-11-26T12:00:00.000Z");
  for (
    const [name, clock] of [["distinct timestamps", undefined], [
      "all in the same instant",
      fixedClock,
    ]] as const
  ) {
    await t.step(name, async () => {
      await using app = await startTestApp(clock ? { sandbox: { clock } } : {});
      const { paymentId, paid, partial, cancelled } = await lifeOfAPayment(app);
      const apply = (s: PaymentSnapshot) =>
        applySnapshot(app.deps.sql, s, "webhook", { requireLiveChannel: false });

      assert.equal((await apply(cancelled)).outcome, "applied");
      assert.equal((await apply(paid)).outcome, "unchanged");
      assert.equal((await apply(partial)).outcome, "unchanged");
      assert.equal((await apply(cancelled)).outcome, "unchanged");
      assert.deepEqual(await stored(app, paymentId), {
        status: "CANCELLED",
        cancelled_amount: 10000,
        cancellable_amount: 0,
        order_status: "cancelled",
        events: 1,
        cancellations: 2,
      });
    });
  }

  await t.step("in order, each step is one transition and one event", async () => {
    await using app = await startTestApp({ sandbox: { clock: fixedClock } });
    const { paymentId, paid, partial, cancelled } = await lifeOfAPayment(app);
    for (const snapshot of [paid, partial, partial, cancelled, paid]) {
      await applySnapshot(app.deps.sql, snapshot, "webhook", { requireLiveChannel: false });
    }
    const events = await app.deps.sql`
      select from_status, to_status from public.payment_events where payment_id = ${paymentId} and source = 'webhook'
      order by id`;
    assert.deepEqual(events.map((e) => `${e.from_status}->${e.to_status}`), [
      "READY->PAID",
      "PAID->PARTIAL_CANCELLED",
      "PARTIAL_CANCELLED->CANCELLED",
    ]);
  });
});
