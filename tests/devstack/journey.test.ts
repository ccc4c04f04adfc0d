/**
 * A real client against `deno task dev`: supabase-js's `functions.invoke` through the gateway, the
 * sandbox's customer simulation, and the sandbox's own record of what happened at "PortOne". Run twice:
 * with the stack's own throwaway cluster (the default), and with DATABASE_URL pointing at a server.
 */
import assert from "node:assert/strict";
import { createClient, postgres, type SupabaseClient } from "../../shared/infra/deps.ts";
import { jose } from "../support/deps.ts";
import { startCluster } from "../support/postgres-cluster.ts";
import { createScratchDatabase } from "../support/database.ts";
import { control, listening, type RunningStack, spawnStack } from "./test-support.ts";
import { createOrderAs } from "./users.ts";
import { defaultDevUserId } from "./keys.ts";

type Step = Deno.TestContext;

// deno-lint-ignore no-explicit-any -- responses are asserted field by field
type Json = any;

/** functions.invoke, with the HTTP status and our `{ error: { code } }` body even on failure. */
async function invoke(
  client: { functions: SupabaseClient["functions"] },
  name: string,
  body: unknown,
  method: "POST" | "GET" | "DELETE" = "POST",
): Promise<{ status: number; data: Json; error: Json }> {
  const { data, error, response } = await client.functions.invoke(name, { body: body as never, method });
  if (!error) return { status: response?.status ?? 200, data, error: null };
  const context = (error as { context?: Response }).context;
  const payload = await context?.json().catch(() => null);
  return { status: context?.status ?? 0, data: null, error: payload?.error ?? payload };
}

async function journey(t: Step, stack: RunningStack) {
  const { state } = stack;
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

      const anonymous = createClient(state.supabaseUrl, state.anonKey);
      const noUser = await invoke(anonymous, "prepare", { orderId: crypto.randomUUID() });
      // the anon key passes the gateway; the function itself requires a signed-in user
      assert.equal(noUser.status, 401);
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
    const client = createClient(state.supabaseUrl, state.anonKey, {
      accessToken: () => Promise.resolve(token),
    });
    let paymentId = "";
    let orderId = "";

    await t.step("prepare → the customer pays in the sandbox → confirm", async () => {
      const order = await createOrderAs(sql, userId, [{ product_id: "coffee-beans", quantity: 2 }]);
      orderId = order.id;
      assert.equal(Number(order.total_amount), 64000);
      assert.equal(order.status, "pending");

      const prepared = await invoke(client, "prepare", { orderId });
      assert.equal(prepared.status, 200, JSON.stringify(prepared.error));
      assert.equal(prepared.data.storeId, state.sandbox!.storeId);
      assert.equal(prepared.data.totalAmount, 64000);
      assert.equal(prepared.data.currency, "KRW");
      assert.equal(prepared.data.customer.customerId, userId);
      assert.match(prepared.data.paymentId, /^pay_[0-9a-f]{32}$/);
      paymentId = prepared.data.paymentId;

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

      const confirmed = await invoke(client, "confirm", { paymentId });
      assert.equal(confirmed.status, 200, JSON.stringify(confirmed.error));
      assert.deepEqual(confirmed.data, { paymentId, status: "PAID", order: { id: orderId, status: "paid" } });
      const [paidOrder] = await sql`select status, paid_payment_id from public.orders where id = ${orderId}`;
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
    });

    await t.step("another user cannot confirm this payment", async () => {
      const other = await stack.token(crypto.randomUUID());
      const otherClient = createClient(state.supabaseUrl, state.anonKey, {
        accessToken: () => Promise.resolve(other),
      });
      const result = await invoke(otherClient, "confirm", { paymentId });
      assert.equal(result.status, 404);
      assert.equal(result.error.code, "not_found");
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
      const request = {
        body: { paymentId, reason: "journey test" },
        headers: { "idempotency-key": crypto.randomUUID() },
      };
      const byCustomer = await client.functions.invoke("cancel", request);
      // CUSTOMER_CANCEL_POLICY defaults to deny: the customer is refused, the merchant's admin may cancel
      assert.equal(byCustomer.response?.status, 403);
      const merchant = await stack.token(crypto.randomUUID(), { admin: true });
      const staff = createClient(state.supabaseUrl, state.anonKey, {
        accessToken: () => Promise.resolve(merchant),
      });
      const { data, error, response } = await staff.functions.invoke("cancel", request);
      assert.equal(response?.status, 200, String(error));
      assert.equal(data.paymentId, paymentId);
      assert.equal(data.status, "CANCELLED");
      assert.equal(data.cancelledAmount, 64000);
      assert.equal(data.cancellableAmount, 0);
      assert.equal(data.cancellation.amount, 64000);
      const truth = await control<Json>(
        state,
        `/truth/payments/${paymentId}?storeId=${state.sandbox!.storeId}`,
      );
      assert.equal(truth.body.status, "CANCELLED");
      const [order] = await sql`select status from public.orders where id = ${orderId}`;
      assert.notEqual(order!.status, "paid");
    });

    await t.step("billing key register / pay / delete", async () => {
      const probe = await invoke(client, "billing-key", undefined, "GET");
      assert.equal(probe.status, 200, JSON.stringify(probe.error));
      assert.deepEqual(probe.data, { billingKeys: [] });

      // the browser SDK's billing-key window, simulated by the sandbox
      const issued = await control<Json>(state, "/customer/billing-keys", {
        customerId: userId,
        card: { number: "5365100000001234" },
      });
      assert.equal(issued.status, 200);
      const registered = await invoke(client, "billing-key", { billingKey: issued.body.billingKey });
      assert.equal(registered.status, 200, JSON.stringify(registered.error));
      assert.equal(registered.data.status, "ISSUED");
      assert.ok(
        !JSON.stringify(registered.data).includes(issued.body.billingKey),
        "the key never leaves the server",
      );
      const keyId = registered.data.id as string;

      const order = await createOrderAs(sql, userId, [{ product_id: "drip-bags", quantity: 1 }]);
      const { data, error, response } = await client.functions.invoke(`billing-key/${keyId}/pay`, {
        body: { orderId: order.id },
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      assert.equal(response?.status, 200, String(error));
      assert.equal(data.status, "PAID");
      assert.deepEqual(data.order, { id: order.id, status: "paid" });
      const truth = await control<Json>(
        state,
        `/truth/payments/${data.paymentId}?storeId=${state.sandbox!.storeId}`,
      );
      assert.equal(truth.body.status, "PAID");
      assert.equal(truth.body.amount.total, 12000);

      const deleted = await invoke(client, `billing-key/${keyId}`, undefined, "DELETE");
      assert.equal(deleted.status, 200, JSON.stringify(deleted.error));
      assert.equal(deleted.data.status, "DELETED");
      assert.deepEqual((await invoke(client, "billing-key", undefined, "GET")).data, { billingKeys: [] });
    });

    await t.step("identity verification", async () => {
      const probe = await invoke(client, "identity-verification", undefined, "GET");
      assert.equal(probe.status, 200, JSON.stringify(probe.error));
      assert.deepEqual(probe.data, { verified: false });

      // the server issues the id; the browser SDK's Danal window (simulated by the sandbox) completes it
      const issued = await invoke(client, "identity-verification/prepare", {});
      assert.equal(issued.status, 200, JSON.stringify(issued.error));
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
      const verified = await invoke(client, "identity-verification", {
        identityVerificationId: completed.body.identityVerificationId,
      });
      assert.equal(verified.status, 200, JSON.stringify(verified.error));
      assert.equal(verified.data.verified, true);
      assert.equal(verified.data.nameMasked, "홍*동");
      assert.equal(verified.data.operator, "SKT");
      assert.equal((await invoke(client, "identity-verification", undefined, "GET")).data.verified, true);
    });
  } finally {
    await sql.end();
  }
}

async function stopsCleanly(t: Step, stack: RunningStack, databasePort: number | null) {
  await t.step("SIGTERM stops everything it started", async () => {
    const gatewayPort = Number(new URL(stack.state.supabaseUrl).port);
    assert.equal(await stack.stop(), 0, stack.output());
    assert.equal(await listening(gatewayPort), false, "gateway closed");
    assert.equal(await listening(Number(new URL(stack.state.sandbox!.url).port)), false, "sandbox closed");
    if (databasePort !== null) assert.equal(await listening(databasePort), false, "cluster stopped");
    await assert.rejects(Deno.stat(stack.stateFile), Deno.errors.NotFound);
  });
}

Deno.test("devstack: supabase-js journey on the stack's own database", async (t) => {
  const stack = await spawnStack();
  try {
    assert.equal(stack.state.database, "cluster");
    assert.equal(stack.state.portone, "sandbox");
    assert.ok(stack.state.readyMs < 15_000, `ready in ${stack.state.readyMs} ms`);
    await journey(t, stack);
    await stopsCleanly(t, stack, Number(new URL(stack.state.databaseUrl).port));
  } finally {
    await stack.stop();
  }
});

Deno.test("devstack: supabase-js journey with DATABASE_URL", async (t) => {
  // the suite's server when there is one (a scratch database keeps runs apart), else our own cluster
  const suiteServer = Deno.env.get("TEST_ADMIN_DATABASE_URL");
  const cluster = suiteServer ? null : await startCluster();
  const scratch = await createScratchDatabase(suiteServer ?? cluster!.adminUrl);
  try {
    const stack = await spawnStack({ env: { DATABASE_URL: scratch.url } });
    try {
      assert.equal(stack.state.database, "DATABASE_URL");
      assert.equal(stack.state.databaseUrl, scratch.url);
      await journey(t, stack);
      await stopsCleanly(t, stack, null);
    } finally {
      await stack.stop();
    }
  } finally {
    await scratch.drop();
    await cluster?.stop();
  }
});
