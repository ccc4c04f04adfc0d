/**
 * What prepare and a saved-card charge cost at the database wire once their isolate is warm (issue #14:
 * prepare ≤ 4 round trips with or without an Idempotency-Key, billing-key pay ≤ 8), counted by the bench's
 * counting proxy in front of the suite's database. prepare: the caller's account check (auth), [the key's
 * claim with the ownership check,] the reservation, the pre-registration's write [beside the key's
 * completion]. A charge: the account check, the claim with the ownership checks and the key's look, the
 * reservation, the sync's apply, the completion.
 */
import assert from "node:assert/strict";
import { startPgProxy } from "./bench/pg-proxy.ts";
import { startTestApp } from "./support/app.ts";
import { appDatabaseUrl } from "./support/test-database.ts";

Deno.test("prepare and billing-key pay: round trips of a warm isolate within issue #14's targets", async (t) => {
  const proxy = startPgProxy(appDatabaseUrl(), { count: true });
  try {
    await using app = await startTestApp({ env: { DATABASE_URL: proxy.url, DB_PREPARE: "true" } });
    const product = await app.createProduct({ price: 4_000, name: "왕복 상품" });
    const user = await app.createUser();
    const order = () => app.createOrder(user, [{ productId: product, quantity: 1 }]);

    await t.step("prepare: at most 4, with or without an Idempotency-Key", async () => {
      const prepare = async (withKey: boolean) => {
        const { id } = await order();
        proxy.reset();
        const reply = await app.call("prepare", {
          user,
          body: { orderId: id },
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
      assert.equal(plain.parses, 0, "every statement was prepared already");
      assert.ok(plain.roundTrips <= 4, `prepare: ${plain.roundTrips} round trips`);
      assert.ok(keyed.roundTrips <= 4, `prepare + Idempotency-Key: ${keyed.roundTrips} round trips`);
    });

    await t.step("billing-key pay: at most 8", async () => {
      const billingKey = app.sandbox.issueBillingKey({
        customerId: user.id,
        card: { number: "4330-1234-5678-9012" },
      });
      const registered = await app.call("billing-key", { user, body: { billingKey } });
      assert.equal(registered.status, 200);
      const pay = async () => {
        const { id } = await order();
        proxy.reset();
        const reply = await app.call("billing-key", {
          user,
          path: `/${registered.body.id}/pay`,
          body: { orderId: id },
          headers: { "idempotency-key": `trips-${crypto.randomUUID()}` },
        });
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
        assert.equal(reply.body.status, "PAID");
        return proxy.counts();
      };
      await pay(); // warm
      const counts = await pay();
      assert.equal(counts.parses, 0, "every statement was prepared already");
      assert.ok(
        counts.roundTrips <= 8,
        `billing-key pay + Idempotency-Key: ${counts.roundTrips} round trips`,
      );
    });
  } finally {
    await proxy.close();
  }
});
