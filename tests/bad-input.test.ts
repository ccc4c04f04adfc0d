/**
 * Bad input never reaches PortOne or the database: every case answers a 4xx with a stable error code, and
 * nothing is written (no payment, event or idempotency record for the caller; no PortOne request).
 */
import assert from "node:assert/strict";
import { type CallInit, startTestApp, type TestApp, type TestUser } from "./support/app.ts";

type Case = readonly [name: string, init: Omit<CallInit, "user">, status: number, code: string];

function commonCases(validBody: Record<string, unknown>, field: string): Case[] {
  const huge = JSON.stringify({ ...validBody, padding: "x".repeat(70 * 1024) });
  return [
    ["an empty object", { body: {} }, 400, "invalid_request"],
    ["an extra field", { body: { ...validBody, amount: 100 } }, 400, "invalid_request"],
    ["a number instead of a string", { body: { ...validBody, [field]: 12345 } }, 400, "invalid_request"],
    ["a negative number", { body: { ...validBody, [field]: -1 } }, 400, "invalid_request"],
    ["a float", { body: { ...validBody, [field]: 1.5 } }, 400, "invalid_request"],
    ["an overflowing number", { rawBody: `{"${field}": 1e400}` }, 400, "invalid_request"],
    ["null", { rawBody: "null" }, 400, "invalid_request"],
    ["an array", { rawBody: `[${JSON.stringify(validBody)}]` }, 400, "invalid_request"],
    [
      "SQL metacharacters",
      { body: { ...validBody, [field]: "'; drop table public.payments; --" } },
      400,
      "invalid_request",
    ],
    ["unicode and a NUL", { body: { ...validBody, [field]: "결제\u0000💳" } }, 400, "invalid_request"],
    ["invalid JSON", { rawBody: `{"${field}": ` }, 400, "invalid_json"],
    ["an empty body", { rawBody: "" }, 400, "invalid_json"],
    ["invalid UTF-8", { rawBody: undefined, body: undefined, headers: {} }, 400, "invalid_json"],
    ["a body over 64 KiB", { rawBody: huge }, 413, "payload_too_large"],
    [
      "a non-JSON content type",
      { rawBody: JSON.stringify(validBody), headers: { "content-type": "text/plain" } },
      415,
      "unsupported_media_type",
    ],
    ["the wrong method", { method: "PUT", body: validBody }, 405, "method_not_allowed"],
  ];
}

async function footprint(app: TestApp, user: TestUser) {
  const [row] = await app.deps.sql`
    select
      (select count(*)::int from public.payments where user_id = ${user.id}) as payments,
      (select count(*)::int from public.payment_events e join public.payments p on p.id = e.payment_id
        where p.user_id = ${user.id}) as events,
      (select count(*)::int from public.idempotency_keys where user_id = ${user.id}) as keys,
      (select count(*)::int from public.orders where user_id = ${user.id} and status <> 'pending') as settled_orders`;
  return { ...row, portoneRequests: app.sandbox.requests().length };
}

async function expectRefused(
  app: TestApp,
  fn: "prepare" | "confirm",
  user: TestUser,
  kase: Case,
): Promise<void> {
  const [name, init, status, code] = kase;
  const before = await footprint(app, user);
  let result;
  if (name === "invalid UTF-8") {
    result = await app.functions[fn].fetch(
      new Request(`http://127.0.0.1/functions/v1/${fn}`, {
        method: "POST",
        headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
        body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
      }),
    ).then(async (r) => ({ status: r.status, body: await r.json() }));
  } else {
    result = await app.call(fn, { ...init, user });
  }
  assert.equal(result.status, status, `${fn} ${name}: ${JSON.stringify(result.body)}`);
  assert.equal(result.body.error.code, code, `${fn} ${name}`);
  assert.equal(typeof result.body.error.message, "string");
  assert.deepEqual(await footprint(app, user), before, `${fn} ${name} wrote something`);
}

Deno.test("bad input is refused with a 4xx and changes nothing", async (t) => {
  await using app = await startTestApp();
  const user = await app.createUser();
  const product = await app.createProduct({ price: 1000 });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);

  for (const kase of commonCases({ orderId: order.id }, "orderId")) {
    await t.step(
      `prepare: ${kase[0]} → ${kase[2]} ${kase[3]}`,
      () => expectRefused(app, "prepare", user, kase),
    );
  }
  for (const kase of commonCases({ paymentId: "pay_0123456789abcdef0123456789abcdef" }, "paymentId")) {
    await t.step(
      `confirm: ${kase[0]} → ${kase[2]} ${kase[3]}`,
      () => expectRefused(app, "confirm", user, kase),
    );
  }
  const extraCases: [fn: "prepare" | "confirm", Case][] = [
    ["prepare", [
      "an unknown payMethod",
      { body: { orderId: order.id, payMethod: "BITCOIN" } },
      400,
      "invalid_request",
    ]],
    ["prepare", ["a non-uuid orderId", { body: { orderId: "order-1" } }, 400, "invalid_request"]],
    ["prepare", [
      "a too-short Idempotency-Key",
      { body: { orderId: order.id }, headers: { "idempotency-key": "abc" } },
      400,
      "invalid_request",
    ]],
    ["prepare", [
      "a non-ASCII Idempotency-Key",
      { body: { orderId: order.id }, headers: { "idempotency-key": "key-\u00fc-0123456789" } },
      400,
      "invalid_request",
    ]],
    ["confirm", [
      "a paymentId that is too long",
      { body: { paymentId: "p".repeat(65) } },
      400,
      "invalid_request",
    ]],
  ];
  for (const [fn, kase] of extraCases) {
    await t.step(`${fn}: ${kase[0]} → ${kase[2]} ${kase[3]}`, () => expectRefused(app, fn, user, kase));
  }

  for (const fn of ["prepare", "confirm"] as const) {
    await t.step(
      `${fn}: no token, an expired, a forged, an anon and a wrong-audience token → 401`,
      async () => {
        const body = fn === "prepare"
          ? { orderId: order.id }
          : { paymentId: "pay_0123456789abcdef0123456789abcdef" };
        const before = await footprint(app, user);
        const { signAccessToken } = await import("./support/auth.ts");
        const tokens = [
          undefined,
          await signAccessToken(user.id, { expiresInSeconds: -60 }),
          await signAccessToken(user.id, { forged: true }),
          await signAccessToken(user.id, { role: "anon" }),
          await signAccessToken(user.id, { audience: "someone-else" }),
          "not-a-jwt",
        ];
        for (const token of tokens) {
          const result = await app.call(fn, token === undefined ? { body } : { body, token });
          assert.equal(result.status, 401, `token ${token?.slice(0, 12)}`);
          assert.equal(result.body.error.code, "unauthorized");
        }
        assert.deepEqual(await footprint(app, user), before);
      },
    );
  }
});
