/**
 * Requests about someone else's resources answer 404 (like a missing one: a 403 would confirm it exists)
 * and write nothing anywhere, not even the caller's Idempotency-Key.
 */
import assert from "node:assert/strict";
import { startTestApp, type TestApp } from "./support/app.ts";

/**
 * Every row of every public table that belongs to one of the users, directly (user_id) or through their
 * orders or payments (webhook_logs through their payment). Other test files write to the same tables in
 * parallel, so they cannot be compared whole; `products` and `reconcile_runs`, linked to no user, no request
 * here can write.
 */
async function snapshot(app: TestApp, userIds: string[]) {
  const tables = await app.deps.sql<{ table_name: string; columns: string[] }[]>`
    select c.table_name, array_agg(c.column_name::text) as columns
    from information_schema.columns c
    join information_schema.tables t using (table_schema, table_name)
    where c.table_schema = 'public' and t.table_type = 'BASE TABLE'
    group by c.table_name order by c.table_name`;
  const rows: Record<string, unknown> = {};
  const unlinked: string[] = [];
  for (const { table_name: table, columns } of tables) {
    const filter = columns.includes("user_id")
      ? app.deps.sql`user_id = any(${userIds}::uuid[])`
      : columns.includes("order_id")
      ? app.deps.sql`order_id in (select id from public.orders where user_id = any(${userIds}::uuid[]))`
      : columns.includes("payment_id")
      ? app.deps.sql`payment_id in (select id from public.payments where user_id = any(${userIds}::uuid[]))`
      : null;
    if (filter === null) {
      unlinked.push(table);
      continue;
    }
    const [result] = await app.deps.sql<{ count: number; content: unknown }[]>`
      select count(*)::int as count, coalesce(json_agg(t order by t::text), '[]'::json) as content
      from ${app.deps.sql("public")}.${app.deps.sql(table)} t where ${filter}`;
    rows[table] = result;
  }
  // reconcile_runs belongs to the store, not a user: only `reconcile` (the scheduler's secret) writes it
  assert.deepEqual(unlinked, ["products", "reconcile_runs"]);
  return rows;
}

Deno.test("requests about another user's resources → 404 and no table changes", async () => {
  await using app = await startTestApp();
  const owner = await app.createUser();
  const intruder = await app.createUser();
  const product = await app.createProduct({ price: 18000, name: "남의 주문" });

  // the owner's world: a paid order, a pending one, a saved card, an issued identity verification
  const paidOrder = await app.createOrder(owner, [{ productId: product, quantity: 1 }]);
  const prepared = await app.call("prepare", { user: owner, body: { orderId: paidOrder.id } });
  app.sandbox.pay({ ...prepared.body, channel: "TEST", method: "CARD", customerId: owner.id });
  assert.equal(
    (await app.call("confirm", { user: owner, body: { paymentId: prepared.body.paymentId } })).status,
    200,
  );
  const pendingOrder = await app.createOrder(owner, [{ productId: product, quantity: 2 }]);
  const ownerKey = app.sandbox.issueBillingKey({ customerId: owner.id });
  const ownerKeyRow = await app.call("billing-key", { user: owner, body: { billingKey: ownerKey } });
  assert.equal(ownerKeyRow.status, 200);
  const issued = await app.call("identity-verification", { user: owner, path: "/prepare", body: {} });
  assert.equal(issued.status, 200);
  // completed at PortOne without a customer id, as a frontend that never sends one would
  app.sandbox.completeIdentityVerification({
    identityVerificationId: issued.body.identityVerificationId,
    customer: {
      name: "홍길동",
      birthDate: "1990-01-02",
      gender: "MALE",
      phoneNumber: "01012345678",
      operator: "SKT",
      ci: `ci-${crypto.randomUUID()}`,
      di: `di-${crypto.randomUUID()}`,
      isForeigner: false,
    },
  });

  // the intruder's own saved card and order, used to reach the owner's
  const intruderKey = app.sandbox.issueBillingKey({ customerId: intruder.id });
  const intruderKeyRow = await app.call("billing-key", { user: intruder, body: { billingKey: intruderKey } });
  assert.equal(intruderKeyRow.status, 200);
  const intruderOrder = await app.createOrder(intruder, [{ productId: product, quantity: 1 }]);

  const before = await snapshot(app, [owner.id, intruder.id]);
  const portoneCallsBefore = app.sandbox.requests().length;
  const key = (name: string) => ({ "idempotency-key": `intruder-${name}-${crypto.randomUUID()}` });
  const attempts = {
    "prepare the owner's order": () =>
      app.call("prepare", { user: intruder, body: { orderId: pendingOrder.id }, headers: key("prepare") }),
    "cancel the owner's payment": () =>
      app.call("cancel", {
        user: intruder,
        body: { paymentId: prepared.body.paymentId, reason: "갖고 싶어서" },
        headers: key("cancel"),
      }),
    "confirm the owner's payment": () =>
      app.call("confirm", { user: intruder, body: { paymentId: prepared.body.paymentId } }),
    "register the owner's billing key": () =>
      app.call("billing-key", { user: intruder, body: { billingKey: ownerKey } }),
    "delete the owner's saved card": () =>
      app.call("billing-key", { user: intruder, method: "DELETE", path: `/${ownerKeyRow.body.id}` }),
    "charge the owner's saved card": () =>
      app.call("billing-key", {
        user: intruder,
        path: `/${ownerKeyRow.body.id}/pay`,
        body: { orderId: intruderOrder.id },
        headers: key("pay-key"),
      }),
    "pay the owner's order with one's own card": () =>
      app.call("billing-key", {
        user: intruder,
        path: `/${intruderKeyRow.body.id}/pay`,
        body: { orderId: pendingOrder.id },
        headers: key("pay-order"),
      }),
    "complete the owner's identity verification": () =>
      app.call("identity-verification", {
        user: intruder,
        body: { identityVerificationId: issued.body.identityVerificationId },
      }),
  };
  for (const [name, attempt] of Object.entries(attempts)) {
    const { status, body } = await attempt();
    assert.equal(status, 404, `${name}: ${JSON.stringify(body)}`);
    assert.equal(body.error.code, "not_found", name);
  }
  assert.deepEqual(await snapshot(app, [owner.id, intruder.id]), before);
  // PortOne was asked only to look things up (the billing key's owner), never to move money
  const calls = app.sandbox.requests().slice(portoneCallsBefore).map((r) => r.operation);
  assert.deepEqual(calls.filter((op) => !op?.startsWith("get")), []);
});
