/**
 * A saved-card charge reads the key's sealed value beside the Idempotency-Key claim and opens it before the
 * reservation (issue #14). When the value changed in between (another request re-sealed it under a newer
 * data key), the reservation writes nothing and the charge reads it again: it still charges once, with the
 * right key.
 */
import assert from "node:assert/strict";
import { lookBeforeCharge, payWithSavedBillingKey } from "../shared/billing/charge.ts";
import { startTestApp } from "./support/app.ts";

Deno.test("a saved card whose sealed value changed after the look is read again and charged once", async () => {
  await using app = await startTestApp();
  const user = await app.createUser();
  const caller = { userId: user.id, isAdmin: false };
  const billingKey = app.sandbox.issueBillingKey({
    customerId: user.id,
    card: { number: "4330-1234-5678-9012" },
  });
  const registered = await app.call("billing-key", { user, body: { billingKey } });
  assert.equal(registered.status, 200);
  const keyId = registered.body.id as string;
  const product = await app.createProduct({ price: 6_500, name: "정기 구독" });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);

  const look = await lookBeforeCharge(caller, keyId, order.id)(app.deps.sql);
  assert.ok(look.sealed_billing_key, "the look found the caller's key");
  assert.equal(look.browser_attempts, null);
  const [stored] = await app.deps.sql<{ billing_key: string }[]>`
    select billing_key from public.billing_keys where id = ${keyId}`;
  const sealedBefore = stored!.billing_key;
  // a value of this key that no longer opens (what the look would hold had the row changed since)
  const stale = { ...look, sealed_billing_key: `${look.sealed_billing_key.slice(0, -4)}AAAA` };
  assert.notEqual(stale.sealed_billing_key, sealedBefore);

  const before = app.sandbox.requests().filter((r) => r.operation === "payWithBillingKey").length;
  const paid = await payWithSavedBillingKey(
    app.deps,
    caller,
    keyId,
    { orderId: order.id },
    `look-${crypto.randomUUID()}`,
    stale,
  );
  assert.equal(paid.status, "PAID");
  const charges = app.sandbox.requests().filter((r) => r.operation === "payWithBillingKey").slice(before);
  assert.equal(charges.length, 1, "charged once");
  const payments = await app.deps.sql<{ id: string; status: string }[]>`
    select id, status from public.payments where order_id = ${order.id}`;
  assert.deepEqual(payments.map((p) => ({ ...p })), [{ id: paid.paymentId, status: "PAID" }]);
  const [row] = await app.deps.sql<{ billing_key: string }[]>`
    select billing_key from public.billing_keys where id = ${keyId}`;
  assert.equal(row?.billing_key, sealedBefore, "the stale value was not written back");
});
