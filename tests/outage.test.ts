/**
 * A PostgreSQL restart under load costs seconds of 503s — never a dead process, a 500, a stuck retry or a
 * lost write (issue #17).
 *
 * Its own cluster with production durability (fsync, synchronous_commit, full_page_writes on), the
 * platform bootstrap and our migrations. Eight customers order, prepare, pay at the PortOne sandbox,
 * confirm, charge saved cards and verify their identity; an admin makes keyed partial refunds; the
 * sandbox's webhooks flow to our webhook function over HTTP. Requests go to three isolates (separate
 * clients, as separate edge workers) in this one process. Meanwhile the server is restarted with
 * `pg_ctl -m fast`, then `-m immediate`. Every failed request is retried with its Idempotency-Key.
 *
 * Afterwards: every failure was a documented 503 (or a documented "in progress" 409) and its retry
 * succeeded; every acknowledged write is in the database; after one `reconcile` every payment equals the
 * sandbox; no refund is doubled; the isolates that started are the ones that served the last requests.
 * The figures (failures per restart by status, time until requests succeed again, writes verified) are
 * printed.
 */
import assert from "node:assert/strict";
import { callFunction, capturedLogLines, startTestApp, testReconcileSecret } from "./support/app.ts";
import type { CallInit, CallResult, TestFunctions, TestUser } from "./support/app.ts";
import { startCluster } from "./support/postgres-cluster.ts";
import { applyBootstrap, pushMigrations, withDatabase } from "./support/database.ts";
import { isTransientDatabaseError } from "../shared/infra/db.ts";
import { defaultClaimTiming } from "../shared/infra/idempotency.ts";

const customers = 8;
const price = 10_000;
const refundAmount = 1_000;
/** How long one request may keep failing before the test calls it stuck. */
const retryLimitMs = 20_000;
/** Load before, between and after the restarts. */
const steadyMs = 2_500;

/** Answers that say "not now, retry": documented in README's status table. */
const retryable = new Set(["503 database_unavailable", "409 payment_in_progress", "409 cancel_in_progress"]);

interface Failure {
  readonly fn: string;
  readonly answer: string;
  readonly at: number;
}

Deno.test("outage: PostgreSQL restarts (fast, immediate) under a mixed load of every function", async () => {
  const cluster = await startCluster({ productionDurability: true });
  try {
    const app = new URL(withDatabase(cluster.adminUrl, "postgres"));
    app.username = "postgres";
    app.password = "postgres";
    await applyBootstrap(cluster.adminUrl);
    await pushMigrations(app.toString());
    await runOutage(cluster, app.toString());
  } finally {
    await cluster.stop();
  }
});

async function runOutage(
  cluster: Awaited<ReturnType<typeof startCluster>>,
  databaseUrl: string,
): Promise<void> {
  await using app = await startTestApp({
    env: { DATABASE_URL: databaseUrl, CUSTOMER_CANCEL_POLICY: "deny" },
  });
  const extra = [app.isolate(), app.isolate()];
  const isolates: TestFunctions[] = [app.functions, ...extra.map((isolate) => isolate.functions)];
  const servedAfterRestarts = new Set<number>();
  app.serveWebhook(isolates[1]);
  const pid = Deno.pid;
  const uncaught: unknown[] = [];
  const onError = (event: ErrorEvent) => uncaught.push(event.error);
  globalThis.addEventListener("error", onError);

  const failures: Failure[] = [];
  const unexpected: string[] = [];
  let restarting: { mode: string; started: number } | null = null;
  let lastRestartEnded = Infinity;
  let calls = 0;
  const started = performance.now();
  const now = () => performance.now() - started;

  /** Calls `fn` on an isolate (round robin) until it answers 2xx; the same init, so the same key. */
  const call = async (fn: keyof TestFunctions, init: CallInit): Promise<CallResult> => {
    const first = performance.now();
    const answers: string[] = [];
    let last503 = -Infinity;
    for (;;) {
      const index = calls++ % isolates.length;
      const result = await callFunction(isolates[index]![fn], fn, init);
      if (result.status < 300) {
        if (now() > lastRestartEnded) servedAfterRestarts.add(index);
        return result;
      }
      const answer = `${result.status} ${result.body?.error?.code}`;
      answers.push(`${Math.round(now())}ms ${answer}`);
      failures.push({ fn, answer, at: now() });
      if (answer === "503 database_unavailable") last503 = performance.now();
      // A claim whose INSERT committed but whose reply died with the connection is known to nobody, so
      // nothing releases it: it holds for one lease (10 s), then the retry takes it over. Within that
      // lease after a 503 of this very call, its 409 is expected; anywhere else it is a stuck claim.
      const lostClaim = answer === "409 request_in_progress" &&
        performance.now() - last503 <= defaultClaimTiming.leaseMs + 1_000;
      if (!retryable.has(answer) && !lostClaim) {
        unexpected.push(`${fn}: ${answer} ${JSON.stringify(result.body)}`);
      }
      if (performance.now() - first > retryLimitMs) {
        throw new Error(`${fn} kept failing for ${retryLimitMs} ms: ${answers.join(", ")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  /** A direct database write the way supabase-js reaches it (PostgREST answers 503 when the DB is down). */
  const rpc = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    const first = performance.now();
    for (;;) {
      try {
        return await work();
      } catch (error) {
        if (!isTransientDatabaseError(error) || performance.now() - first > retryLimitMs) throw error;
        failures.push({ fn: what, answer: "503 database_unavailable", at: now() });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };

  // --- set-up while the database is up
  const product = await app.createProduct({ price, name: "정전 테스트" });
  const admin = await app.createUser({ admin: true });
  const people: { user: TestUser; billingKeyId: string; verified: boolean }[] = [];
  for (let i = 0; i < customers; i++) {
    const user = await app.createUser();
    const billingKey = app.sandbox.issueBillingKey({
      customerId: user.id,
      card: { number: "4330-1234-5678-9012" },
    });
    const registered = await call("billing-key", { user, body: { billingKey } });
    people.push({ user, billingKeyId: registered.body.id, verified: false });
  }

  // --- what the load was told, to check afterwards
  const orders: string[] = [];
  const paid = new Map<string, string>(); // paymentId → orderId, acknowledged PAID
  const refunds: { paymentId: string; key: string }[] = [];
  const verifications: string[] = [];
  let stop = false;

  const customer = async (person: (typeof people)[number], worker: number) => {
    for (let round = 0; !stop; round++) {
      const { user } = person;
      const order = await rpc(
        "create_order",
        () => app.createOrder(user, [{ productId: product, quantity: 1 }]),
      );
      orders.push(order.id);
      const flow = (worker + round) % 3;
      if (flow === 2 && !person.verified) {
        const customerInfo = {
          name: "홍길동",
          birthDate: "1990-01-02",
          gender: "MALE" as const,
          phoneNumber: "01012345678",
          operator: "SKT" as const,
          ci: `ci-${crypto.randomUUID()}`,
          di: `di-${crypto.randomUUID()}`,
          isForeigner: false,
          id: user.id,
        };
        const issued = await call("identity-verification", { user, path: "/prepare", body: {} });
        const id = issued.body.identityVerificationId as string;
        app.sandbox.completeIdentityVerification({ identityVerificationId: id, customer: customerInfo });
        await call("identity-verification", { user, body: { identityVerificationId: id } });
        person.verified = true;
        verifications.push(user.id);
      }
      let paymentId: string;
      if (flow === 1) {
        const charged = await call("billing-key", {
          user,
          path: `/${person.billingKeyId}/pay`,
          body: { orderId: order.id },
          headers: { "idempotency-key": `charge-${order.id}` },
        });
        assert.equal(charged.body.status, "PAID");
        paymentId = charged.body.paymentId;
      } else {
        const checkout = (await call("prepare", {
          user,
          body: { orderId: order.id },
          headers: { "idempotency-key": `prepare-${order.id}` },
        })).body;
        app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
        const confirmed = await call("confirm", { user, body: { paymentId: checkout.paymentId } });
        assert.equal(confirmed.body.status, "PAID");
        paymentId = checkout.paymentId;
      }
      paid.set(paymentId, order.id);
      if (round % 2 === 0) {
        const key = `refund-${paymentId}`;
        const body = { paymentId, amount: refundAmount, reason: "정전 중 부분 환불" };
        await call("cancel", { user: admin, body, headers: { "idempotency-key": key } });
        refunds.push({ paymentId, key });
        // the client's duplicate retry of an acknowledged refund: replayed, never a second refund
        const replay = await call("cancel", { user: admin, body, headers: { "idempotency-key": key } });
        assert.equal(replay.headers.get("idempotent-replayed"), "true");
      }
    }
  };

  // --- the load, and the restarts under it
  const figures: string[] = [];
  const load = Promise.all(people.map((person, worker) => customer(person, worker)));
  let loadError: unknown = null;
  load.catch((error) => {
    loadError = error;
    stop = true;
  });
  await new Promise((resolve) => setTimeout(resolve, steadyMs));
  for (const mode of ["fast", "immediate"] as const) {
    if (loadError) break;
    const failuresBefore = failures.length;
    const successBefore = calls;
    restarting = { mode, started: now() };
    await cluster.restart(mode);
    const serverBack = now();
    // requests succeed again once one call that started after the restart answered 2xx
    let recovered = -1;
    const deadline = performance.now() + retryLimitMs;
    while (recovered < 0 && performance.now() < deadline && !loadError) {
      try {
        await app.deps.sql`select 1`;
        const probe = await callFunction(isolates[0]!.confirm, "confirm", {
          user: people[0]!.user,
          body: { paymentId: [...paid.keys()][0] ?? "pay_0123456789abcdef" },
        });
        if (probe.status < 500) recovered = now();
      } catch {
        // still down
      }
      if (recovered < 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const window = failures.slice(failuresBefore);
    const byAnswer: Record<string, number> = {};
    for (const failure of window) byAnswer[failure.answer] = (byAnswer[failure.answer] ?? 0) + 1;
    figures.push(
      `restart -m ${mode}: server down→up ${Math.round(serverBack - restarting.started)} ms, requests ` +
        `succeed again after ${Math.round(recovered - restarting.started)} ms; ${window.length} failed ` +
        `during it ${JSON.stringify(byAnswer)}; ${calls - successBefore} calls meanwhile`,
    );
    assert.ok(recovered >= 0, `requests did not succeed again within ${retryLimitMs} ms after -m ${mode}`);
    restarting = null;
    lastRestartEnded = now();
    await new Promise((resolve) => setTimeout(resolve, steadyMs));
  }
  stop = true;
  await load;
  globalThis.removeEventListener("error", onError);

  // --- afterwards
  assert.deepEqual(unexpected, [], "every failure was a documented 503 or 409");
  assert.deepEqual(uncaught, [], "no uncaught error");
  assert.equal(Deno.pid, pid);
  assert.deepEqual([...servedAfterRestarts].sort(), [0, 1, 2], "every isolate served after the restarts");

  await app.sandbox.idle();
  const reconciled = await call("reconcile", { token: testReconcileSecret, body: {} });

  const sql = app.deps.sql;
  const storedOrders = await sql<{ id: string }[]>`select id from public.orders where id in ${sql(orders)}`;
  assert.equal(storedOrders.length, orders.length, "every acknowledged order is stored");
  const payments = await sql<{ id: string; status: string; cancelled_amount: number; order_id: string }[]>`
    select id, status, cancelled_amount, order_id from public.payments where id in ${sql([...paid.keys()])}`;
  assert.equal(payments.length, paid.size, "every acknowledged payment is stored");
  const refundsByPayment = new Map<string, number>();
  for (const refund of refunds) {
    refundsByPayment.set(refund.paymentId, (refundsByPayment.get(refund.paymentId) ?? 0) + 1);
  }
  for (const payment of payments) {
    const truth = app.sandbox.getPayment(payment.id) as { status: string; amount: { cancelled: number } };
    assert.deepEqual(
      { status: payment.status, cancelled: payment.cancelled_amount },
      { status: truth.status, cancelled: truth.amount.cancelled },
      `${payment.id} equals the sandbox after one reconcile`,
    );
    const refundedAtPortOne = app.sandbox.refunds().filter((r) => r.paymentId === payment.id);
    const acknowledged = refundsByPayment.get(payment.id) ?? 0;
    assert.equal(
      refundedAtPortOne.length,
      acknowledged,
      `${payment.id}: one refund per acknowledged request`,
    );
    assert.equal(payment.cancelled_amount, acknowledged * refundAmount, `${payment.id} refunded once`);
    assert.equal(payment.order_id, paid.get(payment.id));
    assert.ok(["PAID", "PARTIAL_CANCELLED"].includes(payment.status), `${payment.id} ${payment.status}`);
  }
  const storedVerifications = await sql<{ user_id: string }[]>`
    select user_id from public.identity_verifications where user_id in ${sql(verifications)}`;
  assert.equal(storedVerifications.length, verifications.length, "every acknowledged verification is stored");

  // a delivery that failed in the outage is retried by PortOne or covered by reconcile; a row whose failure
  // could not be recorded (the database was down) stays claimed until its lease runs out: reported, not asserted
  const inbox = await sql<{ status: string; count: number }[]>`
    select status, count(*)::int as count from public.webhook_logs group by status order by status`;
  const inboxFigure = Object.fromEntries(inbox.map((row) => [row.status, row.count]));
  const stuck = await sql<{ count: number }[]>`
    select count(*)::int as count from public.webhook_logs
    where status in ('received', 'processing') and lease_expires_at < now()`;
  inboxFigure["claimed, lease expired"] = stuck[0]!.count;

  const events = (name: string) =>
    capturedLogLines.filter((line) => line.includes(`"event":"${name}"`)).length;
  const writes = orders.length + paid.size + refunds.length + verifications.length;
  // deno-lint-ignore no-console -- the figures are this test's report
  console.log(
    [
      "outage figures",
      ...figures.map((line) => `  ${line}`),
      `  writes verified: ${writes} (${orders.length} orders, ${paid.size} payments PAID, ${refunds.length} ` +
      `refunds, ${verifications.length} identity verifications); ${calls} function calls, ` +
      `${failures.length} failed answers, all retried to success`,
      `  reconcile after: ${JSON.stringify(reconciled.body.portone ?? reconciled.body)}; webhook inbox ${
        JSON.stringify(inboxFigure)
      }`,
      `  client: ${events("database_connection_replaced")} pools replaced, ` +
      `${events("database_driver_error_contained")} stray driver errors contained; process ${pid} throughout`,
    ].join("\n"),
  );
  await Promise.all(extra.map((isolate) => isolate.close()));
}
