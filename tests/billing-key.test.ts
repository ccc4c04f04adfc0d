import assert from "node:assert/strict";
import { billingKeyHash, syncBillingKey } from "../shared/billing/keys.ts";
import { isSealed, open, seal } from "../shared/infra/encryption.ts";
import { type CallInit, capturedLogLines, startTestApp, type TestApp, type TestUser } from "./support/app.ts";

const cardNumber = "4330-1234-5678-9012";

/** Every billing key and card number handed out in this file, for the log scan at the end. */
const secrets: string[] = [cardNumber.replace(/\D/g, "")];

function issue(
  app: TestApp,
  customerId: string,
  options: { declinePayments?: boolean; storeId?: string } = {},
) {
  const billingKey = app.sandbox.issueBillingKey({ customerId, card: { number: cardNumber }, ...options });
  secrets.push(billingKey);
  return billingKey;
}

async function registered(app: TestApp, user: TestUser, options: { declinePayments?: boolean } = {}) {
  const billingKey = issue(app, user.id, options);
  const { status, body } = await app.call("billing-key", { user, body: { billingKey } });
  assert.equal(status, 200);
  return { billingKey, id: body.id as string };
}

async function pendingOrder(app: TestApp, user: TestUser, price = 12900) {
  const product = await app.createProduct({ price, name: "정기 구독" });
  return await app.createOrder(user, [{ productId: product, quantity: 2 }]);
}

function pay(app: TestApp, user: TestUser, keyId: string, orderId: string, idempotencyKey: string) {
  return app.call("billing-key", {
    user,
    path: `/${keyId}/pay`,
    body: { orderId },
    headers: { "idempotency-key": idempotencyKey },
  });
}

function payCalls(app: TestApp) {
  return app.sandbox.requests().filter((r) => r.operation === "payWithBillingKey");
}

async function orderPayments(app: TestApp, orderId: string) {
  const rows = await app.deps.sql<
    {
      id: string;
      status: string;
      billing_key_id: string | null;
      total_amount: number;
      order_status: string;
    }[]
  >`
    select p.id, p.status, p.billing_key_id, p.total_amount, o.status as order_status
    from public.payments p join public.orders o on o.id = p.order_id
    where p.order_id = ${orderId} order by p.created_at`;
  return rows.map((row) => ({ ...row }));
}

Deno.test("billing-key", async (t) => {
  await using app = await startTestApp({ sandbox: { otherStoreIds: ["store-elsewhere"] } });

  await t.step("register, list, pay and delete: the happy path", async () => {
    const user = await app.createUser();
    const billingKey = issue(app, user.id);

    const created = await app.call("billing-key", { user, body: { billingKey } });
    assert.equal(created.status, 200);
    assert.deepEqual({ ...created.body, id: undefined, issuedAt: undefined, createdAt: undefined }, {
      id: undefined,
      status: "ISSUED",
      pgProvider: app.sandbox.channels.test.pgProvider,
      cardIssuer: "KOOKMIN",
      cardBrand: "LOCAL",
      cardType: "CREDIT",
      cardNumberMasked: "****9012",
      cardName: "샌드박스카드",
      issuedAt: undefined,
      deletedAt: null,
      createdAt: undefined,
    });
    assert.ok(!JSON.stringify(created.body).includes(billingKey), "the reply never carries the key");
    // `select billing_key` as the table owner (the functions' role) does not return the key: it is sealed
    const [stored] = await app.deps.sql<
      { user_id: string; billing_key: string; store_id: string; status: string }[]
    >`
      select user_id, billing_key, store_id, status from public.billing_keys where id = ${created.body.id}`;
    assert.deepEqual({ ...stored, billing_key: undefined }, {
      user_id: user.id,
      billing_key: undefined,
      store_id: app.sandbox.storeId,
      status: "ISSUED",
    });
    assert.notEqual(stored!.billing_key, billingKey);
    assert.ok(!stored!.billing_key.includes(billingKey.slice("billing-key-".length)));
    assert.ok(isSealed(stored!.billing_key));
    assert.equal(
      await open(
        app.deps.config.dataEncryptionKeys!,
        stored!.billing_key,
        `billing_keys.billing_key:${user.id}`,
      ),
      billingKey,
    );

    const listed = await app.call("billing-key", { user, method: "GET" });
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body, { billingKeys: [created.body] });

    const order = await pendingOrder(app, user);
    const paid = await pay(app, user, created.body.id, order.id, "happy-path-0001");
    assert.equal(paid.status, 200);
    assert.deepEqual(paid.body, {
      paymentId: paid.body.paymentId,
      status: "PAID",
      order: { id: order.id, status: "paid" },
    });
    const [payment] = await orderPayments(app, order.id);
    assert.deepEqual(payment, {
      id: paid.body.paymentId,
      status: "PAID",
      billing_key_id: created.body.id,
      total_amount: 25800,
      order_status: "paid",
    });
    // the amount PortOne charged came from the order row, and the charge carried a key tied to the attempt
    const atPortOne = app.sandbox.getPayment(paid.body.paymentId) as { amount: { total: number } };
    assert.equal(atPortOne.amount.total, order.totalAmount);
    const [call] = payCalls(app).filter((r) => r.path.includes(paid.body.paymentId));
    assert.equal(call?.idempotencyKey, `billing-pay-${paid.body.paymentId}`);
    const [event] = await app.deps.sql`
      select source, kind from public.payment_events where payment_id = ${paid.body.paymentId} order by id limit 1`;
    assert.deepEqual({ ...event }, { source: "billing", kind: "created" });

    const deleted = await app.call("billing-key", { user, method: "DELETE", path: `/${created.body.id}` });
    assert.equal(deleted.status, 200);
    assert.equal(deleted.body.status, "DELETED");
    assert.ok(deleted.body.deletedAt);
    assert.equal((await app.deps.portone.getBillingKeyInfo(billingKey)).status, "DELETED");
    assert.deepEqual((await app.call("billing-key", { user, method: "GET" })).body, { billingKeys: [] });
  });

  await t.step("registering the same key twice answers the same record and stores one row", async () => {
    const user = await app.createUser();
    const billingKey = issue(app, user.id);
    const first = await app.call("billing-key", { user, body: { billingKey } });
    const second = await app.call("billing-key", { user, body: { billingKey } });
    assert.equal(second.status, 200);
    assert.deepEqual(second.body, first.body);
    const [{ count }] = await app.deps.sql`
      select count(*)::int from public.billing_keys
      where billing_key_sha256 = ${await billingKeyHash(billingKey)}` as unknown as [
      { count: number },
    ];
    assert.equal(count, 1);
  });

  await t.step("a key issued to another customer → 404 (like a missing one) and nothing stored", async () => {
    const owner = await app.createUser();
    const thief = await app.createUser();
    const billingKey = issue(app, owner.id);
    const { status, body } = await app.call("billing-key", { user: thief, body: { billingKey } });
    assert.equal(status, 404);
    assert.equal(body.error.code, "not_found");
    assert.equal(
      (await app.deps.sql`
        select 1 from public.billing_keys where billing_key_sha256 = ${await billingKeyHash(billingKey)}`)
        .length,
      0,
    );
  });

  await t.step("a key issued through a channel other than the store's billing channel → 409", async () => {
    const user = await app.createUser();
    const billingKey = app.sandbox.issueBillingKey({ customerId: user.id, channel: "LIVE" });
    secrets.push(billingKey);
    const { status, body } = await app.call("billing-key", { user, body: { billingKey } });
    assert.equal(status, 409);
    assert.equal(body.error.code, "billing_key_not_active");
    assert.equal(
      (await app.deps.sql`select 1 from public.billing_keys where user_id = ${user.id}`).length,
      0,
    );
  });

  await t.step(
    "a key sealed under a rotated-out key still charges, and is re-sealed under the current one",
    async () => {
      const user = await app.createUser();
      const { id, billingKey } = await registered(app, user);
      const keys = app.deps.config.dataEncryptionKeys!;
      assert.equal(keys[0]?.id, "test-2");
      const context = `billing_keys.billing_key:${user.id}`;
      // as if registered before test-2 became current
      await app.deps.sql`
      update public.billing_keys set billing_key = ${await seal(keys.slice(1), billingKey, context)}
      where id = ${id}`;
      const order = await pendingOrder(app, user);
      const paid = await pay(app, user, id, order.id, `rotation-${crypto.randomUUID()}`);
      assert.equal(paid.status, 200, JSON.stringify(paid.body));
      const [row] = await app.deps.sql<{ billing_key: string }[]>`
      select billing_key from public.billing_keys where id = ${id}`;
      assert.match(row!.billing_key, /^v1\.test-2\./);
      assert.equal(await open(keys, row!.billing_key, context), billingKey);
    },
  );

  await t.step(
    "a key sealed under a key no longer configured → 500 misconfigured, nothing charged",
    async () => {
      const user = await app.createUser();
      const { id, billingKey } = await registered(app, user);
      const dropped = [{ id: "dropped", key: crypto.getRandomValues(new Uint8Array(32)) }];
      await app.deps.sql`
      update public.billing_keys
      set billing_key = ${await seal(dropped, billingKey, `billing_keys.billing_key:${user.id}`)}
      where id = ${id}`;
      const order = await pendingOrder(app, user);
      const before = payCalls(app).length;
      const refused = await pay(app, user, id, order.id, `dropped-${crypto.randomUUID()}`);
      assert.equal(refused.status, 500);
      assert.equal(refused.body.error.code, "misconfigured");
      assert.equal(payCalls(app).length, before);
      assert.deepEqual((await orderPayments(app, order.id)).map((p) => p.status), []);
    },
  );

  await t.step("a key stored in the clear before encryption at rest charges once and is sealed", async () => {
    const user = await app.createUser();
    const billingKey = issue(app, user.id);
    // as written by the code before 20261201130000 (the trigger fills the lookup hash)
    const [legacy] = await app.deps.sql<{ id: string }[]>`
      insert into public.billing_keys (user_id, billing_key, store_id, status, issued_at)
      values (${user.id}, ${billingKey}, ${app.sandbox.storeId}, 'ISSUED', now()) returning id`;
    const order = await pendingOrder(app, user);
    const paid = await pay(app, user, legacy!.id, order.id, `legacy-${crypto.randomUUID()}`);
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    const [row] = await app.deps.sql<{ billing_key: string; billing_key_sha256: string }[]>`
      select billing_key, billing_key_sha256 from public.billing_keys where id = ${legacy!.id}`;
    assert.ok(isSealed(row!.billing_key));
    assert.equal(row!.billing_key_sha256, await billingKeyHash(billingKey));
  });

  await t.step("a key unknown to PortOne or issued in another store → 404", async () => {
    const user = await app.createUser();
    const elsewhere = issue(app, user.id, { storeId: "store-elsewhere" });
    for (const billingKey of ["billing-key-unknown", elsewhere]) {
      const { status, body } = await app.call("billing-key", { user, body: { billingKey } });
      assert.equal(status, 404);
      assert.equal(body.error.code, "not_found");
    }
    assert.equal(
      (await app.deps.sql`select 1 from public.billing_keys where user_id = ${user.id}`).length,
      0,
    );
  });

  await t.step("a key already deleted at PortOne cannot be registered → 409", async () => {
    const user = await app.createUser();
    const billingKey = issue(app, user.id);
    await app.deps.portone.deleteBillingKey(billingKey, "test", "ADMIN");
    const { status, body } = await app.call("billing-key", { user, body: { billingKey } });
    assert.equal(status, 409);
    assert.equal(body.error.code, "billing_key_not_active");
  });

  await t.step("paying with someone else's key → 404, no charge and no payment", async () => {
    const owner = await app.createUser();
    const other = await app.createUser();
    const { id } = await registered(app, owner);
    const order = await pendingOrder(app, other);
    const before = payCalls(app).length;
    const { status, body } = await pay(app, other, id, order.id, "someone-elses-key");
    assert.equal(status, 404);
    assert.equal(body.error.code, "not_found");
    assert.equal(payCalls(app).length, before);
    assert.deepEqual(await orderPayments(app, order.id), []);
  });

  await t.step("paying someone else's order → 404; a paid order → 409 order_not_payable", async () => {
    const user = await app.createUser();
    const other = await app.createUser();
    const { id } = await registered(app, user);
    const foreign = await pendingOrder(app, other);
    const refused = await pay(app, user, id, foreign.id, "someone-elses-order");
    assert.equal(refused.status, 404);
    assert.equal(refused.body.error.code, "not_found");
    assert.deepEqual(await orderPayments(app, foreign.id), []);

    const order = await pendingOrder(app, user);
    assert.equal((await pay(app, user, id, order.id, "pay-once-000001")).status, 200);
    const again = await pay(app, user, id, order.id, "pay-twice-00002");
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "order_not_payable");
    assert.equal((await orderPayments(app, order.id)).length, 1);
  });

  await t.step(
    "a declined charge → 402 with the PG's code, payment FAILED, order still pending",
    async () => {
      const user = await app.createUser();
      const { id } = await registered(app, user, { declinePayments: true });
      const order = await pendingOrder(app, user);
      const declined = await pay(app, user, id, order.id, "declined-000001");
      assert.equal(declined.status, 402);
      assert.deepEqual(declined.body.error, {
        code: "payment_declined",
        message: declined.body.error.message,
        paymentId: declined.body.error.paymentId,
        status: "FAILED",
        pgCode: "REJECT_CARD_COMPANY",
        pgMessage: "한도초과",
      });
      assert.deepEqual(await orderPayments(app, order.id), [{
        id: declined.body.error.paymentId,
        status: "FAILED",
        billing_key_id: id,
        total_amount: order.totalAmount,
        order_status: "pending",
      }]);

      // the same request again replays the decline; a new request is a new attempt under a new paymentId
      const calls = payCalls(app).length;
      const replayed = await pay(app, user, id, order.id, "declined-000001");
      assert.equal(replayed.status, 402);
      assert.equal(replayed.headers.get("idempotent-replayed"), "true");
      assert.equal(payCalls(app).length, calls);
      const retried = await pay(app, user, id, order.id, "declined-000002");
      assert.equal(retried.status, 402);
      assert.notEqual(retried.body.error.paymentId, declined.body.error.paymentId);
      assert.equal((await orderPayments(app, order.id)).length, 2);
    },
  );

  await t.step("a pay retried with the same Idempotency-Key charges once", async () => {
    const user = await app.createUser();
    const { id } = await registered(app, user);
    const order = await pendingOrder(app, user);
    const before = payCalls(app).length;
    const first = await pay(app, user, id, order.id, "retried-pay-0001");
    const second = await pay(app, user, id, order.id, "retried-pay-0001");
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.deepEqual(second.body, first.body);
    assert.equal(second.headers.get("idempotent-replayed"), "true");
    assert.equal(payCalls(app).length - before, 1);
    assert.equal((await orderPayments(app, order.id)).length, 1);
  });

  await t.step(
    "PortOne charged but the answer was lost: the retry reuses the attempt and charges once",
    async () => {
      const user = await app.createUser();
      const { id } = await registered(app, user);
      const order = await pendingOrder(app, user);
      app.sandbox.injectFault({
        operation: "payWithBillingKey",
        mode: "status5xx",
        status: 500,
        applyBeforeFailure: true,
        times: 1,
      });
      const lost = await pay(app, user, id, order.id, "lost-answer-0001");
      assert.equal(lost.status, 503);
      assert.equal(lost.body.error.code, "portone_unavailable");
      const [attempt] = await orderPayments(app, order.id);
      assert.equal(attempt?.status, "READY");

      const retried = await pay(app, user, id, order.id, "lost-answer-0001");
      assert.equal(retried.status, 200);
      assert.equal(retried.body.paymentId, attempt?.id);
      assert.equal(retried.body.status, "PAID");
      const calls = payCalls(app).filter((r) => r.path.includes(attempt!.id));
      assert.equal(calls.length, 2);
      assert.deepEqual(calls.map((c) => [c.idempotencyKey, c.replayed]), [
        [`billing-pay-${attempt!.id}`, false],
        [`billing-pay-${attempt!.id}`, true],
      ]);
      assert.equal((await orderPayments(app, order.id)).length, 1);
    },
  );

  await t.step(
    "deleting twice: PortOne is asked once, the second answers 200 with the same record",
    async () => {
      const user = await app.createUser();
      const { id } = await registered(app, user);
      const deletes = () => app.sandbox.requests().filter((r) => r.operation === "deleteBillingKey").length;
      const before = deletes();
      const first = await app.call("billing-key", { user, method: "DELETE", path: `/${id}` });
      const second = await app.call("billing-key", { user, method: "DELETE", path: `/${id}` });
      assert.equal(first.status, 200);
      assert.equal(second.status, 200);
      assert.deepEqual(second.body, first.body);
      assert.equal(deletes() - before, 1);
    },
  );

  await t.step("a key deleted at PortOne meanwhile: DELETE still succeeds", async () => {
    const user = await app.createUser();
    const { id, billingKey } = await registered(app, user);
    await app.deps.portone.deleteBillingKey(billingKey, "console", "ADMIN");
    const { status, body } = await app.call("billing-key", { user, method: "DELETE", path: `/${id}` });
    assert.equal(status, 200);
    assert.equal(body.status, "DELETED");
  });

  await t.step("someone else's key cannot be deleted → 404, the key stays", async () => {
    const owner = await app.createUser();
    const other = await app.createUser();
    const { id, billingKey } = await registered(app, owner);
    const { status } = await app.call("billing-key", { user: other, method: "DELETE", path: `/${id}` });
    assert.equal(status, 404);
    assert.equal((await app.deps.portone.getBillingKeyInfo(billingKey)).status, "ISSUED");
  });

  await t.step("a deleted key cannot pay → 409 billing_key_not_active, PortOne not asked", async () => {
    const user = await app.createUser();
    const { id } = await registered(app, user);
    await app.call("billing-key", { user, method: "DELETE", path: `/${id}` });
    const order = await pendingOrder(app, user);
    const before = payCalls(app).length;
    const { status, body } = await pay(app, user, id, order.id, "deleted-key-0001");
    assert.equal(status, 409);
    assert.equal(body.error.code, "billing_key_not_active");
    assert.equal(payCalls(app).length, before);
  });

  await t.step(
    "a key deleted only at PortOne: the charge is refused and our row is marked deleted",
    async () => {
      const user = await app.createUser();
      const { id, billingKey } = await registered(app, user);
      await app.deps.portone.deleteBillingKey(billingKey, "console", "ADMIN");
      const order = await pendingOrder(app, user);
      const { status, body } = await pay(app, user, id, order.id, "portone-deleted-1");
      assert.equal(status, 409);
      assert.equal(body.error.code, "billing_key_not_active");
      const [row] = await app.deps.sql`select status from public.billing_keys where id = ${id}`;
      assert.equal(row?.status, "DELETED");
      assert.equal((await orderPayments(app, order.id))[0]?.order_status, "pending");
    },
  );

  await t.step(
    "syncBillingKey follows PortOne: updated, then unchanged; unknown keys are not ours",
    async () => {
      const user = await app.createUser();
      const { id, billingKey } = await registered(app, user);
      assert.equal(await syncBillingKey(app.deps, billingKey), "unchanged");
      await app.deps.portone.deleteBillingKey(billingKey, "console", "ADMIN");
      assert.equal(await syncBillingKey(app.deps, billingKey), "updated");
      const [row] = await app.deps.sql`select status, deleted_at from public.billing_keys where id = ${id}`;
      assert.equal(row?.status, "DELETED");
      assert.ok(row?.deleted_at instanceof Date);
      assert.equal(await syncBillingKey(app.deps, billingKey), "unchanged");
      assert.equal(await syncBillingKey(app.deps, issue(app, user.id)), "not_ours");
    },
  );

  await t.step("no token → 401", async () => {
    const { status, body } = await app.call("billing-key", { method: "GET" });
    assert.equal(status, 401);
    assert.equal(body.error.code, "unauthorized");
  });

  await t.step("bad input → 4xx with a stable code, no write and no PortOne call", async () => {
    const user = await app.createUser();
    const { id, billingKey } = await registered(app, user);
    const order = await pendingOrder(app, user);
    const unknownId = crypto.randomUUID();
    const key = { "idempotency-key": "bad-input-00001" };
    const cases: [string, CallInit, number, string][] = [
      ["register: an empty object", { body: {} }, 400, "invalid_request"],
      ["register: an extra field", { body: { billingKey, customerId: user.id } }, 400, "invalid_request"],
      ["register: a number", { body: { billingKey: 12345 } }, 400, "invalid_request"],
      ["register: an empty string", { body: { billingKey: "" } }, 400, "invalid_request"],
      ["register: a path in the key", { body: { billingKey: "a/../b c" } }, 400, "invalid_request"],
      ["register: dots", { body: { billingKey: "billing-key-.." } }, 400, "invalid_request"],
      ["register: a slash", { body: { billingKey: "billing-key/x" } }, 400, "invalid_request"],
      ["register: an escape", { body: { billingKey: "billing-key%2F.." } }, 400, "invalid_request"],
      ["register: a query", { body: { billingKey: "billing-key?x=1" } }, 400, "invalid_request"],
      ["register: null", { rawBody: "null" }, 400, "invalid_request"],
      ["register: invalid JSON", { rawBody: "{" }, 400, "invalid_json"],
      [
        "pay: no Idempotency-Key",
        { path: `/${id}/pay`, body: { orderId: order.id } },
        400,
        "invalid_request",
      ],
      [
        "pay: an orderId that is no UUID",
        {
          path: `/${id}/pay`,
          body: { orderId: "1 or 1=1" },
          headers: key,
        },
        400,
        "invalid_request",
      ],
      [
        "pay: an extra amount field",
        {
          path: `/${id}/pay`,
          body: { orderId: order.id, amount: 1 },
          headers: key,
        },
        400,
        "invalid_request",
      ],
      [
        "pay: a short Idempotency-Key",
        {
          path: `/${id}/pay`,
          body: { orderId: order.id },
          headers: { "idempotency-key": "short" },
        },
        400,
        "invalid_request",
      ],
      [
        "pay: an unknown key id",
        {
          path: `/${unknownId}/pay`,
          body: { orderId: order.id },
          headers: key,
        },
        404,
        "not_found",
      ],
      ["an id that is no UUID", { method: "DELETE", path: "/not-a-uuid" }, 404, "not_found"],
      ["an unknown action", { path: `/${id}/refund`, body: {} }, 404, "not_found"],
      [
        "a deeper path",
        { path: `/${id}/pay/now`, body: { orderId: order.id }, headers: key },
        404,
        "not_found",
      ],
      ["PUT", { method: "PUT", body: { billingKey } }, 405, "method_not_allowed"],
      ["DELETE on the collection", { method: "DELETE" }, 405, "method_not_allowed"],
      ["GET on a key", { method: "GET", path: `/${id}` }, 405, "method_not_allowed"],
      ["POST on a key", { path: `/${id}`, body: {} }, 405, "method_not_allowed"],
      ["GET on pay", { method: "GET", path: `/${id}/pay` }, 405, "method_not_allowed"],
    ];
    const footprint = async () => {
      const [row] = await app.deps.sql`
        select
          (select count(*)::int from public.billing_keys where user_id = ${user.id}) as keys,
          (select string_agg(status, ',') from public.billing_keys where user_id = ${user.id}) as statuses,
          (select count(*)::int from public.payments where user_id = ${user.id}) as payments,
          (select count(*)::int from public.idempotency_keys where user_id = ${user.id}) as idempotency`;
      return { ...row, portone: app.sandbox.requests().length };
    };
    const before = await footprint();
    for (const [name, init, status, code] of cases) {
      const response = await app.call("billing-key", { user, ...init });
      assert.equal(response.status, status, name);
      assert.equal(response.body.error.code, code, name);
    }
    assert.deepEqual(await footprint(), before);
  });

  await t.step("no log line contains a billing key or a card number", () => {
    assert.ok(capturedLogLines.some((line) => line.includes("billing_key_registered")), "the flows logged");
    for (const line of capturedLogLines) {
      for (const secret of secrets) assert.ok(!line.includes(secret), `a log line leaks a secret: ${line}`);
    }
  });
});
