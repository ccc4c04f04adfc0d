/**
 * The six ways a request used to end in a 5xx although nothing of ours was down (issue 13), each as the
 * request that caused it: a token of a deleted user, deep nesting, NUL and lone surrogates, signed webhooks
 * we could not parse or store, tokens with a known key id but another algorithm (and unknown key ids), and
 * webhook bodies in PortOne's 2024-01-01 and V1 formats.
 */
import assert from "node:assert/strict";
import { capturedLogLines, startTestApp, type TestApp, type TestUser } from "./support/app.ts";
import { testJwks } from "./support/auth.ts";
import { jose } from "./support/deps.ts";
import { signWebhook } from "./sandbox/webhooks.ts";

interface Paid {
  readonly user: TestUser;
  readonly paymentId: string;
}

async function preparedPayment(app: TestApp) {
  const user = await app.createUser();
  const product = await app.createProduct({ price: 12000, name: "입력 테스트" });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
  return { user, checkout };
}

async function paidPayment(app: TestApp): Promise<Paid> {
  const { user, checkout } = await preparedPayment(app);
  app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
  const confirmed = await app.call("confirm", { user, body: { paymentId: checkout.paymentId } });
  assert.equal(confirmed.body.status, "PAID");
  return { user, paymentId: checkout.paymentId };
}

/** Rows a request by these users, or about this payment, could have written (other test files run in parallel). */
async function footprint(app: TestApp, userIds: string[], paymentId = "") {
  const [row] = await app.deps.sql`
    select
      (select count(*)::int from public.payments where user_id = any(${userIds}::uuid[])) as payments,
      (select count(*)::int from public.payment_cancellations
        where payment_id = ${paymentId} or requested_by = any(${userIds}::uuid[])) as cancellations,
      (select count(*)::int from public.payment_events where payment_id = ${paymentId}) as events,
      (select count(*)::int from public.idempotency_keys where user_id = any(${userIds}::uuid[])) as keys`;
  return { ...row };
}

async function sendSignedWebhook(
  app: TestApp,
  body: string,
  webhookId = `msg_${crypto.randomUUID()}`,
): Promise<{ status: number; body: { received?: boolean; status?: string } }> {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = await signWebhook(app.sandbox.webhookSecret, webhookId, timestamp, body);
  const response = await app.functions.webhook.fetch(
    new Request("http://127.0.0.1/functions/v1/webhook", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": webhookId,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature,
      },
      body,
    }),
  );
  return { status: response.status, body: await response.json() };
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const testKeyId = (JSON.parse(testJwks) as { keys: { kid: string }[] }).keys[0]!.kid;

/** A token signed with a fresh key of another algorithm, under a chosen key id. */
async function tokenWithAlgorithm(userId: string, alg: string, kid: string): Promise<string> {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const now = Math.floor(Date.now() / 1000);
  return await new jose.SignJWT({ role: "authenticated", app_metadata: {} })
    .setProtectedHeader({ alg, kid, typ: "JWT" })
    .setSubject(userId)
    .setAudience("authenticated")
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(privateKey);
}

Deno.test("issue 13: inputs that used to end in a 5xx", async (t) => {
  // SUPABASE_URL points at a loopback key-set server that counts its fetches
  let jwksFetches = 0;
  const authServer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    if (new URL(request.url).pathname === "/auth/v1/.well-known/jwks.json") {
      jwksFetches++;
      return new Response(testJwks, { headers: { "content-type": "application/json" } });
    }
    return new Response(JSON.stringify({ msg: "invalid JWT" }), { status: 401 });
  });
  await using app = await startTestApp({
    env: { SUPABASE_URL: `http://127.0.0.1:${authServer.addr.port}` },
  });
  try {
    await t.step("1: a valid token of a deleted user → 401 unauthorized, nothing written", async () => {
      const user = await app.createUser();
      await app.deps.sql`delete from auth.users where id = ${user.id}`;
      const before = await footprint(app, [user.id]);
      const prepare = await app.call("prepare", {
        user,
        body: { orderId: crypto.randomUUID() },
        headers: { "idempotency-key": `deleted-${crypto.randomUUID()}` },
      });
      assert.equal(prepare.status, 401, JSON.stringify(prepare.body));
      assert.equal(prepare.body.error.code, "unauthorized");
      const cancel = await app.call("cancel", {
        user,
        body: { paymentId: "pay_0123456789abcdef0123456789abcdef", reason: "탈퇴" },
        headers: { "idempotency-key": `deleted-${crypto.randomUUID()}` },
      });
      assert.equal(cancel.status, 401, JSON.stringify(cancel.body));
      assert.equal(cancel.body.error.code, "unauthorized");
      assert.deepEqual(await footprint(app, [user.id]), before);
    });

    await t.step("2: deep nesting in cancel's refundAccount → 400 invalid_request", async () => {
      const { user, paymentId } = await paidPayment(app);
      const admin = await app.createUser({ admin: true });
      const before = await footprint(app, [user.id, admin.id], paymentId);
      for (const depth of [100, 6_000, 30_000]) {
        const rawBody = `{"paymentId":"${paymentId}","reason":"깊이","refundAccount":${"[".repeat(depth)}${
          "]".repeat(depth)
        }}`;
        const result = await app.call("cancel", {
          user: admin,
          rawBody,
          headers: { "idempotency-key": `nested-${crypto.randomUUID()}` },
        });
        assert.equal(result.status, 400, `depth ${depth}: ${JSON.stringify(result.body)}`);
        assert.equal(result.body.error.code, "invalid_request");
      }
      assert.deepEqual(await footprint(app, [user.id, admin.id], paymentId), before);
    });

    await t.step("3: U+0000 and lone surrogates in any string → 400 invalid_request", async () => {
      const { user, paymentId } = await paidPayment(app);
      const admin = await app.createUser({ admin: true });
      const before = await footprint(app, [user.id, admin.id], paymentId);
      const reasons = ["환불\\u0000", "\\ud800", "a\\udc00b", "\\udbff", "end\\ud83d"];
      for (const reason of reasons) {
        const result = await app.call("cancel", {
          user: admin,
          rawBody: `{"paymentId":"${paymentId}","reason":"${reason}"}`,
          headers: { "idempotency-key": `text-${crypto.randomUUID()}` },
        });
        assert.equal(result.status, 400, `${reason}: ${JSON.stringify(result.body)}`);
        assert.equal(result.body.error.code, "invalid_request");
      }
      // a surrogate pair is a real character and passes
      const ok = await app.call("cancel", {
        user: admin,
        rawBody: `{"paymentId":"${paymentId}","reason":"\\ud83d\\udcb3 환불"}`,
        headers: { "idempotency-key": `text-${crypto.randomUUID()}` },
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const [row] = await app.deps.sql`
        select reason from public.payment_cancellations where payment_id = ${paymentId}`;
      assert.equal(row?.reason, "💳 환불");
      assert.equal(
        (await footprint(app, [user.id, admin.id], paymentId)).cancellations,
        before.cancellations + 1,
      );
      const billing = await app.call("billing-key", { user, rawBody: `{"billingKey":"bk\\u0000"}` });
      assert.equal(billing.status, 400);
      assert.equal(billing.body.error.code, "invalid_request");
    });

    await t.step("4: signed webhooks we cannot parse or store → 200, recorded as malformed", async () => {
      const bodies: [string, string][] = [
        ["null", "not_an_object"],
        ["", "not_json"],
        ["this is not json", "not_json"],
        ["[1,2,3]", "not_an_object"],
        [`{"type":"Transaction.Paid","data":{"paymentId":"p\\u0000","storeId":"s"}}`, "unstorable_text"],
        [`{"type":"Transaction.Paid","data":{"paymentId":"\\ud800","storeId":"s"}}`, "unstorable_text"],
        [`{"type":"Transaction.Paid","data":{"x\\u0000":1}}`, "unstorable_text"],
        [`{"type":"Transaction.Paid","data":${"[".repeat(5000)}${"]".repeat(5000)}}`, "too_deep"],
      ];
      for (const [body, reason] of bodies) {
        const webhookId = `msg_${crypto.randomUUID()}`;
        const lines = capturedLogLines.length;
        const first = await sendSignedWebhook(app, body, webhookId);
        assert.equal(
          first.status,
          200,
          `${JSON.stringify(body.slice(0, 60))}: ${JSON.stringify(first.body)}`,
        );
        assert.equal(first.body.status, "malformed");
        const again = await sendSignedWebhook(app, body, webhookId);
        assert.equal(again.status, 200);
        const [row] = await app.deps.sql`
          select status, last_error, attempts, payload_sha256 from public.webhook_logs where webhook_id = ${webhookId}`;
        assert.deepEqual({ ...row }, {
          status: "malformed",
          last_error: reason,
          attempts: 2,
          payload_sha256: await sha256Hex(body),
        });
        const logged = capturedLogLines.slice(lines).filter((line) => line.includes('"webhook_malformed"'));
        assert.equal(logged.length, 1, "logged once, not per redelivery");
      }
      // a webhook-id longer than the column allows is recorded under its hash
      const longId = `msg_${"x".repeat(300)}`;
      const body = JSON.stringify({ type: "Transaction.Paid", timestamp: "", data: {} });
      const long = await sendSignedWebhook(app, body, longId);
      assert.equal(long.status, 200, JSON.stringify(long.body));
      assert.equal(long.body.status, "malformed");
      const [row] = await app.deps.sql`
        select status, last_error from public.webhook_logs where webhook_id = ${`sha256:${await sha256Hex(
        longId,
      )}`}`;
      assert.deepEqual({ ...row }, { status: "malformed", last_error: "webhook_id_too_long" });
    });

    await t.step(
      "5: a known key id with another algorithm → 401; unknown key ids fetch at most once",
      async () => {
        const user = await app.createUser();
        const body = { orderId: crypto.randomUUID() };
        const tokens = [
          await tokenWithAlgorithm(user.id, "RS256", testKeyId),
          await tokenWithAlgorithm(user.id, "ES384", testKeyId),
          await tokenWithAlgorithm(user.id, "PS256", testKeyId),
          await tokenWithAlgorithm(user.id, "EdDSA", testKeyId),
          `${btoa(JSON.stringify({ alg: "none", kid: testKeyId })).replace(/=+$/, "")}.${
            btoa(JSON.stringify({ sub: user.id, role: "authenticated" })).replace(/=+$/, "")
          }.`,
        ];
        for (const token of tokens) {
          const result = await app.call("prepare", { token, body });
          assert.equal(result.status, 401, `${token.slice(0, 30)}: ${JSON.stringify(result.body)}`);
          assert.equal(result.body.error.code, "unauthorized");
        }
        const fetchesBefore = jwksFetches;
        for (let i = 0; i < 25; i++) {
          const token = await tokenWithAlgorithm(user.id, "ES256", `unknown-${crypto.randomUUID()}`);
          const result = await app.call("prepare", { token, body });
          assert.equal(result.status, 401, JSON.stringify(result.body));
          assert.equal(result.body.error.code, "unauthorized");
        }
        assert.ok(
          jwksFetches - fetchesBefore <= 1,
          `${jwksFetches - fetchesBefore} key-set fetches for 25 tokens`,
        );
      },
    );

    await t.step(
      "6: 2024-01-01 webhooks are processed; V1 bodies are recorded and warned about",
      async () => {
        const { user, checkout } = await preparedPayment(app);
        app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
        const legacy = await sendSignedWebhook(
          app,
          JSON.stringify({ payment_id: checkout.paymentId, tx_id: "tx-legacy-1", status: "Paid" }),
        );
        assert.equal(legacy.status, 200);
        assert.equal(legacy.body.status, "processed");
        const [payment] = await app.deps.sql`
        select p.status, o.status as order_status from public.payments p join public.orders o on o.id = p.order_id
        where p.id = ${checkout.paymentId}`;
        assert.deepEqual({ ...payment }, { status: "PAID", order_status: "paid" });

        const webhookId = `msg_${crypto.randomUUID()}`;
        const lines = capturedLogLines.length;
        const v1 = await sendSignedWebhook(
          app,
          JSON.stringify({ imp_uid: "imp_123456789012", merchant_uid: "order-1", status: "paid" }),
          webhookId,
        );
        assert.equal(v1.status, 200);
        assert.equal(v1.body.status, "unsupported_format");
        const [row] = await app.deps.sql`
        select status, last_error from public.webhook_logs where webhook_id = ${webhookId}`;
        assert.deepEqual({ ...row }, { status: "unsupported_format", last_error: "portone_v1" });
        const warning = capturedLogLines.slice(lines).find((line) =>
          line.includes('"webhook_unsupported_format"')
        );
        assert.ok(warning?.includes('"level":"warn"'), warning);
        assert.ok(warning?.includes("2024-04-25"), "the warning names the version to choose in the console");
      },
    );
  } finally {
    await authServer.shutdown();
  }
});
