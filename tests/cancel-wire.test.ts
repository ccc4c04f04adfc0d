/**
 * What cancel's own database work costs at the wire, counted by the bench's counting proxy on a warm
 * connection with prepared statements (production's direct connection): the reservation is one round trip,
 * whether it records a new cancellation or answers a retry whose cancellation PortOne already settled (two
 * without prepared statements, as through Supabase's transaction pooler).
 */
import assert from "node:assert/strict";
import { readConfig } from "../shared/infra/config.ts";
import { createAppDeps } from "../shared/infra/runtime.ts";
import { cancelPayment } from "../shared/payments/cancel.ts";
import { startTestApp } from "./support/app.ts";
import { startPgProxy } from "./bench/pg-proxy.ts";
import { functionEnv } from "./bench/support.ts";
import { appDatabaseUrl } from "./support/test-database.ts";

Deno.test("cancel's reservation costs one round trip", async (t) => {
  await using app = await startTestApp();
  const proxy = startPgProxy(appDatabaseUrl(), { count: true });
  const deps = createAppDeps(readConfig({ ...functionEnv(app.sandbox, proxy.url), DB_PREPARE: "true" }));
  try {
    const user = await app.createUser();
    const admin = { userId: (await app.createUser({ admin: true })).id, isAdmin: true };
    const paid = async () => {
      const product = await app.createProduct({ price: 10000 });
      const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
      const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
      app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
      assert.equal(
        (await app.call("confirm", { user, body: { paymentId: checkout.paymentId } })).status,
        200,
      );
      return checkout.paymentId as string;
    };
    const counted = async <T>(run: () => Promise<T>) => {
      proxy.reset();
      const result = await run().catch((error: unknown) => error);
      const { roundTrips, statements, transactions } = proxy.counts();
      return { result, wire: { roundTrips, statements, transactions } };
    };
    // warm the connection and its statement cache with every statement a cancel sends; the first reservation
    // is also the new connection's first statement (its parameters must not depend on types fetched later)
    const warmKey = `w-${crypto.randomUUID()}`;
    const warmPayment = await paid();
    const warm = { paymentId: warmPayment, amount: 1000, reason: "예열" };
    await cancelPayment(deps, admin, warm, warmKey);
    await cancelPayment(deps, admin, warm, warmKey);

    await t.step("a new reservation, before PortOne is called", async () => {
      const paymentId = await paid();
      // PortOne never answers: the reservation is all this cancel does at the database
      app.sandbox.injectFault({ operation: "cancelPayment", mode: "reset", times: 1 });
      const { result, wire } = await counted(() =>
        cancelPayment(
          deps,
          admin,
          { paymentId, amount: 1000, reason: "응답 없음" },
          `n-${crypto.randomUUID()}`,
        )
      );
      assert.ok(result instanceof Error, "PortOne was unreachable");
      assert.deepEqual(wire, { roundTrips: 1, statements: 1, transactions: 1 });
      const [row] = await app.deps.sql`
        select status, amount from public.payment_cancellations where payment_id = ${paymentId}`;
      assert.deepEqual({ ...row }, { status: "REQUESTED", amount: 1000 });
    });

    await t.step("a retry PortOne already settled: answered from the reservation alone", async () => {
      const paymentId = await paid();
      const key = `r-${crypto.randomUUID()}`;
      const request = { paymentId, amount: 2500, reason: "재시도" };
      const first = await cancelPayment(deps, admin, request, key);
      const { result, wire } = await counted(() => cancelPayment(deps, admin, request, key));
      assert.deepEqual(result, first);
      assert.deepEqual(wire, { roundTrips: 1, statements: 1, transactions: 1 });
    });

    await t.step(
      "without prepared statements (a transaction pooler): the reservation costs two",
      async () => {
        const unprepared = createAppDeps(
          readConfig({ ...functionEnv(app.sandbox, proxy.url), DB_PREPARE: "false" }),
        );
        try {
          await unprepared.sql`select 1`;
          const paymentId = await paid();
          const key = `u-${crypto.randomUUID()}`;
          const request = { paymentId, amount: 1500, reason: "풀러" };
          const first = await cancelPayment(unprepared, admin, request, key);
          assert.equal(first.cancellation.status, "SUCCEEDED");
          const { result, wire } = await counted(() => cancelPayment(unprepared, admin, request, key));
          assert.deepEqual(result, first);
          // Parse/Describe/Flush, then Bind/Execute/Sync
          assert.deepEqual(wire, { roundTrips: 2, statements: 1, transactions: 1 });
        } finally {
          await unprepared.sql.end();
        }
      },
    );
  } finally {
    await deps.sql.end();
    await proxy.close();
  }
});

Deno.test("a partial cancel with an Idempotency-Key: at most 8 round trips once warm (issue #14)", async () => {
  // the caller's account check, the key's claim with the access check, the reservation, PortOne's answer
  // settled with the payment's fresh snapshot, the answer's read, the key's completion
  const proxy = startPgProxy(appDatabaseUrl(), { count: true });
  try {
    await using app = await startTestApp({ env: { DATABASE_URL: proxy.url, DB_PREPARE: "true" } });
    const user = await app.createUser();
    const admin = await app.createUser({ admin: true });
    const product = await app.createProduct({ price: 10000 });
    const partialCancel = async () => {
      const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
      const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
      app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
      assert.equal(
        (await app.call("confirm", { user, body: { paymentId: checkout.paymentId } })).status,
        200,
      );
      proxy.reset();
      const reply = await app.call("cancel", {
        user: admin,
        body: { paymentId: checkout.paymentId, amount: 3000, reason: "부분 취소" },
        headers: { "idempotency-key": `trips-${crypto.randomUUID()}` },
      });
      const counts = proxy.counts();
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.deepEqual([reply.body.status, reply.body.cancelledAmount, reply.body.cancellation.status], [
        "PARTIAL_CANCELLED",
        3000,
        "SUCCEEDED",
      ]);
      return counts;
    };
    await partialCancel(); // warm
    const counts = await partialCancel();
    assert.equal(counts.parses, 0, "every statement was prepared already");
    assert.ok(counts.roundTrips <= 8, `partial cancel + Idempotency-Key: ${counts.roundTrips} round trips`);
  } finally {
    await proxy.close();
  }
});
