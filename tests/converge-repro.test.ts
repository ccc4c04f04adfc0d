/**
 * The five ways a payment's history failed to converge on PortOne's truth (issue CONVERGE), each driven
 * end to end through our functions, real PostgreSQL and the sandbox.
 */
import assert from "node:assert/strict";
import { startTestApp, type TestApp, testReconcileSecret, type TestUser } from "./support/app.ts";
import { adminSql } from "./support/test-database.ts";

function cancel(app: TestApp, user: TestUser, body: Record<string, unknown>, key: string) {
  return app.call("cancel", { user, body, headers: { "idempotency-key": key } });
}

function reconcile(app: TestApp, body: Record<string, unknown> = {}) {
  return app.call("reconcile", { body, token: testReconcileSecret });
}

async function row(app: TestApp, paymentId: string) {
  const [found] = await app.deps.sql`
    select p.status, p.cancelled_amount, p.cancel_reserved_amount, o.status as order_status
    from public.payments p join public.orders o on o.id = p.order_id where p.id = ${paymentId}`;
  return { ...found };
}

Deno.test("1: a stale reservation and a console refund of everything neither wedge the payment nor reconcile", async () => {
  await using app = await startTestApp();
  const admin = await app.createUser({ admin: true });
  const { user, paymentId } = await app.paidPayment();

  // our 3,000 partial cancel never reaches PortOne: 503, the reservation is kept (as designed)
  app.sandbox.injectFault({ operation: "cancelPayment", mode: "reset", times: 1 });
  const lost = await cancel(
    app,
    admin,
    { paymentId, amount: 3000, reason: "부분 환불" },
    crypto.randomUUID(),
  );
  assert.equal(lost.status, 503);
  assert.equal((await row(app, paymentId)).cancel_reserved_amount, 3000);

  // an admin refunds the whole payment in PortOne's console
  await app.deps.portone.cancelPayment({
    paymentId,
    reason: "콘솔 전액 환불",
    requester: "ADMIN",
    currentCancellableAmount: 10000,
    idempotencyKey: `console-${crypto.randomUUID()}`,
  });
  // another payment whose webhook and confirm were lost, for reconcile to heal in the same run
  const other = await app.paidPayment({ confirm: false });

  const confirmed = await app.call("confirm", { user, body: { paymentId } });
  assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
  assert.equal(confirmed.body.status, "CANCELLED");
  assert.deepEqual(await row(app, paymentId), {
    status: "CANCELLED",
    cancelled_amount: 10000,
    cancel_reserved_amount: 0,
    order_status: "cancelled",
  });
  const [ours] = await app.deps.sql`
    select status, failure_reason from public.payment_cancellations
    where payment_id = ${paymentId} and requester = 'ADMIN'`;
  assert.equal(ours?.status, "FAILED", "the reservation that can no longer succeed is settled");

  const run = await reconcile(app);
  assert.equal(run.status, 200, JSON.stringify(run.body));
  assert.deepEqual(run.body.errors, []);
  assert.equal((await row(app, other.paymentId)).status, "PAID");
});

Deno.test("1b: reconcile reports a payment it cannot apply and goes on with the others", async () => {
  await using app = await startTestApp();
  const broken = await app.paidPayment();
  // our row claims more was refunded than PortOne ever did (a hand edit, a bug): the next snapshot would
  // lower cancelled_amount, which the database refuses
  await app.deps.sql`
    update public.payments set status = 'PARTIAL_CANCELLED', cancelled_amount = 6000 where id = ${broken.paymentId}`;
  await app.deps.portone.cancelPayment({
    paymentId: broken.paymentId,
    amount: 1000,
    reason: "콘솔 환불",
    requester: "ADMIN",
    currentCancellableAmount: 10000,
    idempotencyKey: `console-${crypto.randomUUID()}`,
  });
  const healthy = await app.paidPayment({ confirm: false });
  const run = await reconcile(app);
  assert.equal(run.status, 200, JSON.stringify(run.body));
  assert.ok(
    run.body.errors.some((e: { paymentId: string }) => e.paymentId === broken.paymentId),
    JSON.stringify(run.body.errors),
  );
  assert.equal((await row(app, healthy.paymentId)).status, "PAID");
});

Deno.test("1c: a console refund of the same amount as our lost cancel is never taken for ours (found by the convergence test, seed 100185)", async () => {
  await using app = await startTestApp();
  const admin = await app.createUser({ admin: true });
  const { paymentId } = await app.paidPayment({ price: 12000 });
  const key = crypto.randomUUID();
  const body = { paymentId, reason: "변심" };
  app.sandbox.injectFault({ operation: "cancelPayment", mode: "reset", times: 1 });
  assert.equal((await cancel(app, admin, body, key)).status, 503);
  // staff refund everything in the console, left pending at an asynchronous PG, and the webhook says so
  app.sandbox.consoleCancel({ paymentId, pending: true });
  await app.call("confirm", { user: (await app.createUser()) as TestUser, body: { paymentId } }).catch(
    () => {},
  );
  assert.equal((await reconcile(app)).status, 200);
  // the client retries its lost cancel: PortOne refuses it (the balance is held), nothing else changes
  const retried = await cancel(app, admin, body, key);
  assert.equal(retried.status, 409, JSON.stringify(retried.body));
  assert.equal(retried.body.error.code, "payment_out_of_sync");
  const truth = app.sandbox.getPayment(paymentId) as unknown as {
    cancellations: { id: string; status: string }[];
  };
  const rows = await app.deps.sql<
    { status: string; portone_cancellation_id: string | null; requester: string }[]
  >`
    select status, portone_cancellation_id, requester from public.payment_cancellations where payment_id = ${paymentId}`;
  const console_ = rows.find((r) => r.portone_cancellation_id === truth.cancellations[0]!.id);
  assert.deepEqual({ ...console_ }, {
    status: "REQUESTED",
    portone_cancellation_id: truth.cancellations[0]!.id,
    requester: "PORTONE",
  });
  assert.deepEqual(rows.filter((r) => r.requester === "ADMIN").map((r) => r.status), ["FAILED"]);
  app.sandbox.completeCancellation({ paymentId, outcome: "SUCCEEDED" });
  assert.equal((await reconcile(app)).status, 200);
  assert.deepEqual(await row(app, paymentId), {
    status: "CANCELLED",
    cancelled_amount: 12000,
    cancel_reserved_amount: 0,
    order_status: "cancelled",
  });
});

Deno.test("2: an asynchronous cancel PortOne marks FAILED is settled and releases its reservation", async () => {
  await using app = await startTestApp();
  const admin = await app.createUser({ admin: true });
  const { paymentId } = await app.paidPayment({ asyncCancel: true });
  const first = await cancel(
    app,
    admin,
    { paymentId, amount: 4000, reason: "비동기 취소" },
    crypto.randomUUID(),
  );
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.cancellation.status, "REQUESTED");
  assert.equal((await row(app, paymentId)).cancel_reserved_amount, 4000);

  app.sandbox.completeCancellation({ paymentId, outcome: "FAILED" });
  const run = await reconcile(app);
  assert.equal(run.status, 200, JSON.stringify(run.body));
  const [settled] = await app.deps.sql`
    select status from public.payment_cancellations where payment_id = ${paymentId}`;
  assert.equal(settled?.status, "FAILED");
  assert.deepEqual(await row(app, paymentId), {
    status: "PAID",
    cancelled_amount: 0,
    cancel_reserved_amount: 0,
    order_status: "paid",
  });
  const next = await cancel(app, admin, { paymentId, amount: 1000, reason: "다시" }, crypto.randomUUID());
  assert.equal(next.status, 200, JSON.stringify(next.body));
});

Deno.test("2b: recovery re-fetches an abandoned cancellation PortOne already knows", async () => {
  await using app = await startTestApp();
  const admin = await app.createUser({ admin: true });
  const { paymentId } = await app.paidPayment({ asyncCancel: true });
  const first = await cancel(
    app,
    admin,
    { paymentId, amount: 4000, reason: "비동기 취소" },
    crypto.randomUUID(),
  );
  assert.equal(first.body.cancellation.status, "REQUESTED");
  app.sandbox.completeCancellation({ paymentId, outcome: "FAILED" });
  await app.deps.sql`
    update public.payment_cancellations set requested_at = now() - interval '10 minutes'
    where payment_id = ${paymentId}`;
  // the next cancel finds the abandoned one, re-fetches it, sees it FAILED and goes ahead
  const next = await cancel(app, admin, { paymentId, amount: 1000, reason: "다시" }, crypto.randomUUID());
  assert.equal(next.status, 200, JSON.stringify(next.body));
  assert.deepEqual(next.body.cancellation.amount, 1000);
  const [first_] = await app.deps.sql`
    select status from public.payment_cancellations where id = ${first.body.cancellation.id}`;
  assert.equal(first_?.status, "FAILED");
});

Deno.test("3: reconcile checks least-recently-checked first and skips long-expired accounts", async () => {
  // PortOne's clock is two days behind: neither the scan of a one-minute window nor the event log started a
  // minute ago can see these payments, only the re-check of our waiting payments can
  await using app = await startTestApp({
    sandbox: { clock: () => new Date(Date.now() - 2 * 24 * 3600_000) },
  });
  const accounts: string[] = [];
  for (let i = 0; i < 4; i++) {
    const user = await app.createUser();
    const product = await app.createProduct({ price: 5000 + i });
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
    app.sandbox.pay({ ...checkout, channel: "TEST", method: "VIRTUAL_ACCOUNT", customerId: user.id });
    await app.call("confirm", { user, body: { paymentId: checkout.paymentId } });
    accounts.push(checkout.paymentId);
  }
  // the oldest expired a month ago; the next is still open and never paid; the last two were paid, their
  // webhooks lost
  const [expired, open, a, b] = accounts as [string, string, string, string];
  await app.deps.sql`
    update public.payments set virtual_account_expires_at = now() - interval '30 days' where id = ${expired}`;
  app.sandbox.depositVirtualAccount(a);
  app.sandbox.depositVirtualAccount(b);
  // The guarantee: a payment with W waiting payments checked less recently (itself included) is checked
  // within ⌈W / maxWaiting⌉ runs. Other tests share this database, so W is counted, not assumed.
  const maxWaiting = 2;
  const [ahead] = await app.deps.sql<{ n: number }[]>`
    with waiting as (
      select p.id, coalesce(p.checked_at, p.created_at) as key from public.payments p
      where p.status = 'PAY_PENDING'
         or (p.status = 'VIRTUAL_ACCOUNT_ISSUED' and (p.virtual_account_expires_at is null
             or p.virtual_account_expires_at > now() - interval '1 day'))
         or exists (select 1 from public.payment_cancellations c where c.payment_id = p.id and c.status = 'REQUESTED'))
    select count(*)::int as n from waiting where key <= (select key from waiting where id = ${b})`;
  const runs = Math.ceil(ahead!.n / maxWaiting);
  const reports = [];
  for (let run = 0; run < runs; run++) {
    const { status, body } = await reconcile(app, { maxWaiting, lookbackMinutes: 1 });
    assert.equal(status, 200, JSON.stringify(body));
    reports.push(body);
  }
  assert.equal((await row(app, a)).status, "PAID");
  assert.equal((await row(app, b)).status, "PAID");
  assert.equal((await row(app, open)).status, "VIRTUAL_ACCOUNT_ISSUED");
  assert.equal(reports[0].stoppedShort?.waiting?.reason, "limit");
  assert.ok(reports[0].waiting.skippedExpired >= 1);
  const [checked] = await app.deps.sql`select checked_at from public.payments where id = ${expired}`;
  assert.equal(checked?.checked_at, null, "an account expired beyond the grace period is not re-checked");
});

Deno.test("3b: a busy window is scanned to the end across runs, and the report says where it stopped", async () => {
  await using app = await startTestApp();
  const lost: string[] = [];
  for (let i = 0; i < 5; i++) lost.push((await app.paidPayment({ confirm: false })).paymentId);
  const reports = [];
  for (let run = 0; run < 3; run++) {
    const { status, body } = await reconcile(app, { maxPayments: 2, maxWaiting: 0, maxEvents: 0 });
    assert.equal(status, 200, JSON.stringify(body));
    reports.push(body);
  }
  for (const id of lost) assert.equal((await row(app, id)).status, "PAID", id);
  assert.equal(reports[0].stoppedShort?.scan?.reason, "limit", JSON.stringify(reports[0]));
  assert.ok(reports[0].stoppedShort.scan.resumeCursor);
  assert.deepEqual(reports[1].window, reports[0].window, "the next run resumes the same window");
  assert.notDeepEqual(reports[2].window, reports[0].window, "the third run finishes it and starts its own");
});

Deno.test("3c: a console refund of a payment older than the look-back window is applied from PortOne's events", async () => {
  let offsetMs = -10 * 24 * 3600_000;
  await using app = await startTestApp({ sandbox: { clock: () => new Date(Date.now() + offsetMs) } });
  const { paymentId } = await app.paidPayment();
  // a first run sets the event checkpoint
  assert.equal((await reconcile(app)).status, 200);
  offsetMs = 0;
  app.sandbox.consoleCancel({ paymentId, amount: 2500, reason: "콘솔 환불" });
  // the webhook was lost; the payment is ten days old, far outside a one-minute scan
  const { status, body } = await reconcile(app, { lookbackMinutes: 1, maxWaiting: 0 });
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.portone.scanned, 0);
  assert.equal(body.events.applied, 1, JSON.stringify(body));
  assert.equal((await row(app, paymentId)).cancelled_amount, 2500);
});

Deno.test("4: a re-prepare racing a sync of the same order does not deadlock", async () => {
  await using app = await startTestApp();
  const user = await app.createUser();
  const product = await app.createProduct({ price: 7000 });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
  app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });

  const admin = adminSql();
  const syncSide = app.isolate();
  const prepareSide = app.isolate();
  try {
    // hold the payment row so both sides queue up behind it: the sync first, then the re-prepare
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    let held!: () => void;
    const holding = new Promise<void>((resolve) => held = resolve);
    const holder = admin.begin(async (tx) => {
      await tx`select 1 from public.payments where id = ${checkout.paymentId} for update`;
      held();
      await released;
    });
    await holding;
    const waiters = async () =>
      (await admin<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where application_name = 'portone-payments' and wait_event_type = 'Lock'`)[0]!.n;
    const confirm = syncSide.functions.confirm.fetch(
      new Request("http://127.0.0.1/functions/v1/confirm", {
        method: "POST",
        headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
        body: JSON.stringify({ paymentId: checkout.paymentId }),
      }),
    );
    for (let i = 0; i < 200 && (await waiters()) < 1; i++) await new Promise((r) => setTimeout(r, 10));
    const prepare = prepareSide.functions.prepare.fetch(
      new Request("http://127.0.0.1/functions/v1/prepare", {
        method: "POST",
        headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
        body: JSON.stringify({ orderId: order.id }),
      }),
    );
    for (let i = 0; i < 200 && (await waiters()) < 2; i++) await new Promise((r) => setTimeout(r, 10));
    release();
    await holder;
    const [confirmed, prepared] = await Promise.all([confirm, prepare]);
    const confirmBody = await confirmed.json();
    const prepareBody = await prepared.json();
    assert.equal(confirmed.status, 200, JSON.stringify(confirmBody));
    assert.equal(confirmBody.status, "PAID");
    assert.ok(
      prepared.status === 200 || (prepared.status === 409 && prepareBody.error.code === "order_not_payable"),
      `${prepared.status} ${JSON.stringify(prepareBody)}`,
    );
  } finally {
    await syncSide.close();
    await prepareSide.close();
    await admin.end();
  }
});

Deno.test("5: a refused cancel retried with the same Idempotency-Key answers the original error", async () => {
  await using app = await startTestApp();
  const admin = await app.createUser({ admin: true });
  const { paymentId } = await app.paidPayment();
  app.sandbox.injectFault({
    operation: "cancelPayment",
    mode: "refusal",
    status: 502,
    type: "PG_PROVIDER",
    times: 1,
  });
  const key = crypto.randomUUID();
  const first = await cancel(app, admin, { paymentId, amount: 2000, reason: "PG 거절" }, key);
  assert.equal(first.status, 502, JSON.stringify(first.body));
  assert.equal(first.body.error.code, "portone_error");
  const retried = await cancel(app, admin, { paymentId, amount: 2000, reason: "PG 거절" }, key);
  assert.equal(retried.status, 502, JSON.stringify(retried.body));
  assert.equal(retried.body.error.code, "portone_error");
  assert.equal(app.sandbox.refunds().filter((r) => r.paymentId === paymentId).length, 0);
});
