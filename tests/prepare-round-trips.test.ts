/**
 * What prepare costs at the database wire once its isolate is warm (issue #14: ≤ 4 round trips, with or
 * without an Idempotency-Key), counted by the bench's counting proxy in front of the suite's database:
 * the caller's account check (auth), [the key's claim with the ownership check,] the reservation, and the
 * pre-registration's write [beside the key's completion].
 */
import assert from "node:assert/strict";
import { startPgProxy } from "./bench/pg-proxy.ts";
import { startTestApp } from "./support/app.ts";
import { appDatabaseUrl } from "./support/test-database.ts";

Deno.test("prepare: at most 4 round trips warm, with or without an Idempotency-Key", async () => {
  const proxy = startPgProxy(appDatabaseUrl(), { count: true });
  try {
    await using app = await startTestApp({ env: { DATABASE_URL: proxy.url, DB_PREPARE: "true" } });
    const product = await app.createProduct({ price: 4_000, name: "왕복 상품" });
    const user = await app.createUser();
    const prepare = async (withKey: boolean) => {
      const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
      proxy.reset();
      const reply = await app.call("prepare", {
        user,
        body: { orderId: order.id },
        ...(withKey ? { headers: { "idempotency-key": `trips-${crypto.randomUUID()}` } } : {}),
      });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const counts = proxy.counts();
      const [row] = await app.deps.sql<{ pre_registered: boolean }[]>`
        select pre_registered_at is not null as pre_registered from public.payments
        where id = ${reply.body.paymentId}`;
      assert.equal(row?.pre_registered, true, "the pre-registration was recorded");
      return counts;
    };
    // warm: the connection open and every statement prepared
    await prepare(false);
    await prepare(true);

    const plain = await prepare(false);
    const keyed = await prepare(true);
    assert.equal(plain.connections, 0);
    assert.ok(plain.roundTrips <= 4, `prepare: ${plain.roundTrips} round trips`);
    assert.ok(keyed.roundTrips <= 4, `prepare + Idempotency-Key: ${keyed.roundTrips} round trips`);
    assert.equal(plain.parses, 0, "every statement was prepared already");
  } finally {
    await proxy.close();
  }
});
