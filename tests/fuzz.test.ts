/**
 * Generated bad requests against every function: wrong types, missing and extra fields, deep nesting, huge
 * numbers, NUL and unpaired surrogates (in values and keys), non-objects, broken JSON and UTF-8, oversized
 * bodies, wrong methods, content types and paths, tokens of a deleted user, forged, expired, wrong-role,
 * wrong-audience, wrong-algorithm and unknown-key tokens, and signed webhooks with odd bodies.
 *
 * Every answer must be a documented one: a status below 500 whose `code` is in the catalogue with that
 * status (or one of the few documented 2xx: reads, preflight, webhook receipts). Nothing may change: every
 * table in `public` and `auth` is compared (row count and a digest of every row) before and after each
 * function's batch; the only rows allowed to appear are webhook_logs rows of deliveries that were recorded
 * without being processed (`malformed`, `unsupported_format`, `ignored`). No PortOne call may write, and no
 * error-level log line may be written.
 *
 * The run uses its own copy of the database (FUZZ_DATABASE_URL, made by the suite runner), because other
 * test files write to the shared one in parallel. `FUZZ_SEED` and `FUZZ_COUNT` (per function, default
 * 1,000) explore more; a failure prints the seed, the request number and the request.
 */
import assert from "node:assert/strict";
import { errorStatus } from "../shared/infra/errors.ts";
import { postgres, type z } from "../shared/infra/deps.ts";
import { validate } from "../shared/infra/http.ts";
import { PrepareRequest } from "../shared/contract/prepare.ts";
import { ConfirmRequest } from "../shared/contract/confirm.ts";
import { CancelRequest } from "../shared/contract/cancel.ts";
import { ReconcileRequest } from "../shared/contract/reconcile.ts";
import { PayWithBillingKeyRequest, RegisterBillingKeyRequest } from "../shared/contract/billing-key.ts";
import { PrepareIdentityRequest, VerifyIdentityRequest } from "../shared/contract/identity-verification.ts";
import { capturedLogLines, startTestApp, type TestApp, testReconcileSecret } from "./support/app.ts";
import { signAccessToken, testJwks } from "./support/auth.ts";
import { jose } from "./support/deps.ts";
import { signWebhook } from "./sandbox/webhooks.ts";

const seed = Number(Deno.env.get("FUZZ_SEED") ?? "13");
const count = Number(Deno.env.get("FUZZ_COUNT") ?? "1000");

/** mulberry32: small, seedable, good enough to pick cases. */
function random(seedValue: number) {
  let state = seedValue >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (max: number) => Math.floor(next() * max);
  return { next, int, pick: <T>(items: readonly T[]): T => items[int(items.length)]! };
}
type Random = ReturnType<typeof random>;

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array<ArrayBuffer>;
}

interface Fixtures {
  readonly tokens: {
    readonly valid: string;
    readonly admin: string;
    /** Tokens that must all get 401. */
    readonly bad: readonly string[];
  };
  readonly orderId: string;
  readonly paymentId: string;
  readonly billingKeyId: string;
  readonly storeId: string;
}

// ---------------------------------------------------------------------------------------------------
// Value generators: every one yields something the field's schema must refuse

const badText = ["a\u0000b", "\u0000", "\ud800", "x\udc00", "\udbff\u0000", "ok\ud83d", "\udfff\ud800"];

function deep(rnd: Random): unknown {
  // deeper still is sent as raw text (JSON.stringify itself recurses)
  const depth = rnd.pick([33, 40, 200, 2_000]);
  let value: unknown = rnd.pick([1, "x", null, {}]);
  for (let i = 0; i < depth; i++) value = rnd.int(2) === 0 ? [value] : { a: value };
  return value;
}

function wrongValue(rnd: Random): unknown {
  switch (rnd.int(10)) {
    case 0:
      return rnd.pick([true, false, null]);
    case 1:
      return rnd.pick([-1, 0, 1.5, -0.5, 2 ** 53, 2 ** 63, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2]);
    case 2:
      return rnd.pick([[], [1, 2], [{}], ["a"]]);
    case 3:
      return rnd.pick([{}, { nested: 1 }, { "": "" }]);
    case 4:
      return rnd.pick(badText) + "x".repeat(rnd.int(4));
    case 5:
      return deep(rnd);
    case 6:
      return rnd.pick(["", " ", "'; drop table public.payments; --", "x".repeat(300), "😀".repeat(70)]);
    case 7:
      return { [rnd.pick(badText)]: 1 };
    case 8:
      return rnd.pick(["NaN", "Infinity", "-1", "1e400"]);
    default:
      return [rnd.pick(badText)];
  }
}

/**
 * Whether the function would take this body as a valid request. Generated bodies it would accept are
 * replaced: with a good token they are real requests (a refund, a reconcile run) that may write.
 */
function acceptable(schema: z.ZodType, body: string): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return false;
  }
  try {
    validate(schema, parsed);
    return true;
  } catch {
    return false;
  }
}

/** A request body the schema refuses, built from a valid one. */
function badJsonBody(
  rnd: Random,
  schema: z.ZodType,
  valid: Record<string, unknown>,
  required: readonly string[],
): string {
  for (;;) {
    const body = mutatedBody(rnd, valid, required);
    if (!acceptable(schema, body)) return body;
  }
}

function mutatedBody(rnd: Random, valid: Record<string, unknown>, required: readonly string[]): string {
  const fields = Object.keys(valid);
  switch (rnd.int(9)) {
    case 0: { // a required field missing (or, when none is required, a field of the wrong name)
      if (required.length === 0) return JSON.stringify({ ...valid, unknownField: rnd.int(100) });
      const copy = { ...valid };
      delete copy[rnd.pick(required)];
      return JSON.stringify(copy);
    }
    case 1: // an extra field
      return JSON.stringify({ ...valid, [rnd.pick(["extra", "amount", "userId", "__proto__x", "x"])]: 1 });
    case 2: // a wrong value in one field
    case 3:
      return JSON.stringify({ ...valid, [rnd.pick(fields)]: wrongValue(rnd) });
    case 4: // a key we cannot store
      return JSON.stringify({ ...valid, [rnd.pick(badText)]: "v" });
    case 5: // not an object
      return rnd.pick(["null", "[]", "1", '"text"', "true", `[${JSON.stringify(valid)}]`]);
    case 6: // numbers JSON.parse makes odd
      return `{"${rnd.pick(fields)}": ${
        rnd.pick(["1e400", "-1e400", "1e-400", "123456789012345678901234567890"])
      }}`;
    case 7: // raw nesting (past what a recursive walker survives)
      return `{"${rnd.pick(fields)}":${"[".repeat(30_000)}${"]".repeat(30_000)}}`;
    default: // escaped NUL and lone surrogates in raw JSON
      return `{"${rnd.pick(fields)}":"${rnd.pick(["\\u0000", "\\ud800", "\\udc00x", "a\\ud800\\u0000"])}"}`;
  }
}

/** Transport-level damage: broken JSON or UTF-8, oversized, or the wrong content type. */
function badTransport(rnd: Random, request: FuzzRequest): FuzzRequest {
  switch (rnd.int(6)) {
    case 0:
      return { ...request, body: rnd.pick(["", "{", '{"a":', "{'a':1}", "nul", "{}}", "\u0000"]) };
    case 1:
      return { ...request, body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]) };
    case 2:
      return { ...request, body: `{"pad":"${"x".repeat(64 * 1024 + rnd.int(10_000))}"}` };
    case 3:
      return {
        ...request,
        headers: {
          ...request.headers,
          "content-type": rnd.pick(["text/plain", "application/x-www-form-urlencoded"]),
        },
      };
    case 4:
      return { ...request, method: rnd.pick(["PUT", "PATCH", "HEAD", "CONNECT_X"]) };
    default:
      return { ...request, headers: { ...request.headers, "content-length": String(10 ** 9) } };
  }
}

const idempotencyKey = (rnd: Random) => `fuzz-${rnd.int(1e9)}-${rnd.int(1e9)}`;

/** A user-facing function's bad request: a valid body with a bad token, or a bad body with a good one. */
function userRequest(
  rnd: Random,
  fixtures: Fixtures,
  path: string,
  schema: z.ZodType,
  valid: Record<string, unknown>,
  required: readonly string[],
  extraHeaders: Record<string, string> = {},
): FuzzRequest {
  const base: FuzzRequest = {
    method: "POST",
    path,
    headers: { "content-type": "application/json", ...extraHeaders },
    body: JSON.stringify(valid),
  };
  const roll = rnd.int(10);
  if (roll < 3) {
    const token = rnd.int(8) === 0 ? "" : rnd.pick(fixtures.tokens.bad);
    return { ...base, headers: token ? { ...base.headers, authorization: `Bearer ${token}` } : base.headers };
  }
  const token = rnd.int(4) === 0 ? fixtures.tokens.admin : fixtures.tokens.valid;
  const signedIn = { ...base, headers: { ...base.headers, authorization: `Bearer ${token}` } };
  if (roll < 8) return { ...signedIn, body: badJsonBody(rnd, schema, valid, required) };
  return badTransport(rnd, { ...signedIn, body: badJsonBody(rnd, schema, valid, required) });
}

// ---------------------------------------------------------------------------------------------------
// Per-function generators

type Generator = (rnd: Random, fixtures: Fixtures) => FuzzRequest;

const generators: Record<string, Generator> = {
  prepare: (rnd, f) =>
    userRequest(rnd, f, "/prepare", PrepareRequest, { orderId: f.orderId, payMethod: "CARD" }, ["orderId"], {
      "idempotency-key": idempotencyKey(rnd),
    }),
  confirm: (rnd, f) =>
    userRequest(rnd, f, "/confirm", ConfirmRequest, { paymentId: f.paymentId }, ["paymentId"]),
  cancel: (rnd, f) => {
    const valid = {
      paymentId: f.paymentId,
      amount: 1000,
      reason: "퍼즈",
      refundAccount: { bank: "SHINHAN", number: "110123456789", holderName: "홍길동" },
    };
    const roll = rnd.int(10);
    const signedIn = (token: string, headers: Record<string, string> = {}) => ({
      method: "POST",
      path: "/cancel",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...headers },
    });
    if (roll === 0) {
      // a valid body and token, but no Idempotency-Key
      return { ...signedIn(rnd.pick([f.tokens.valid, f.tokens.admin])), body: JSON.stringify(valid) };
    }
    if (roll === 1) {
      // an admin's refund with an account wrong in type, depth or text
      for (;;) {
        const body = JSON.stringify({
          ...valid,
          refundAccount: {
            ...valid.refundAccount,
            [rnd.pick(["holderName", "number", "bank"])]: wrongValue(rnd),
          },
        });
        if (!acceptable(CancelRequest, body)) {
          return { ...signedIn(f.tokens.admin, { "idempotency-key": idempotencyKey(rnd) }), body };
        }
      }
    }
    return userRequest(rnd, f, "/cancel", CancelRequest, valid, ["paymentId", "reason"], {
      "idempotency-key": idempotencyKey(rnd),
    });
  },
  "billing-key": (rnd, f) => {
    const routes = [
      () =>
        userRequest(rnd, f, "/billing-key", RegisterBillingKeyRequest, {
          billingKey: "billing-key-fuzz-0001",
        }, ["billingKey"]),
      () =>
        userRequest(
          rnd,
          f,
          `/billing-key/${f.billingKeyId}/pay`,
          PayWithBillingKeyRequest,
          { orderId: f.orderId },
          ["orderId"],
          {
            "idempotency-key": idempotencyKey(rnd),
          },
        ),
      (): FuzzRequest => ({
        method: rnd.pick(["DELETE", "POST", "GET", "PUT"]),
        path: rnd.pick([
          "/billing-key/not-a-uuid",
          "/billing-key/%00",
          `/billing-key/${f.billingKeyId}/pay/extra`,
          `/billing-key/${f.billingKeyId}/refund`,
          `/billing-key/${crypto.randomUUID()}`,
          "/billing-key/%ED%A0%80",
        ]),
        headers: { authorization: `Bearer ${rnd.pick([f.tokens.valid, ...f.tokens.bad])}` },
      }),
    ];
    return rnd.pick(routes)();
  },
  "identity-verification": (rnd, f) =>
    rnd.int(4) === 0
      // issuing an id takes `{}` with a good token, so only refused variants are sent
      ? userRequest(rnd, f, "/identity-verification/prepare", PrepareIdentityRequest, {}, [])
      : userRequest(rnd, f, "/identity-verification", VerifyIdentityRequest, {
        identityVerificationId: "identity-fuzz-0001",
      }, ["identityVerificationId"]),
  reconcile: (rnd, f) => {
    const valid = { lookbackMinutes: 60, maxPayments: 10, maxWaiting: 5 };
    const request: FuzzRequest = {
      method: "POST",
      path: "/reconcile",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(valid),
    };
    const roll = rnd.int(10);
    if (roll < 3) {
      const secret = rnd.pick([
        "",
        "wrong",
        testReconcileSecret.slice(1),
        `${testReconcileSecret}x`,
        f.tokens.valid,
      ]);
      return { ...request, headers: secret ? { ...request.headers, authorization: `Bearer ${secret}` } : {} };
    }
    // with the secret, only bodies the schema refuses (an empty body is a valid run and is never sent)
    const authorized = {
      ...request,
      headers: { ...request.headers, authorization: `Bearer ${testReconcileSecret}` },
      body: badJsonBody(rnd, ReconcileRequest, valid, []),
    };
    return roll < 8 ? authorized : { ...badTransport(rnd, authorized), body: authorized.body };
  },
  admin: (rnd, f) => {
    const oddText = rnd.pick([
      "%00",
      "%ED%A0%80",
      "-1",
      "1e400",
      "abc",
      "%ZZ",
      "'%3B--",
      "x".repeat(300),
      "",
    ]);
    const path = rnd.pick([
      "/admin/health",
      `/admin/payments?limit=${oddText}`,
      `/admin/payments?status=${oddText}`,
      `/admin/payments?limit=5&status=PAID&extra=${oddText}`,
      `/admin/payments/${oddText}/timeline`,
      `/admin/payments/${f.paymentId}/timeline`,
      `/admin/payments/${f.paymentId}/timeline/${oddText}`,
      `/admin/webhooks?limit=${oddText}`,
      `/admin/webhooks?status=${oddText}`,
      `/admin/${oddText}`,
      "/admin",
    ]);
    const token = rnd.pick([f.tokens.valid, f.tokens.admin, f.tokens.admin, ...f.tokens.bad]);
    const method = rnd.int(6) === 0 ? rnd.pick(["POST", "DELETE", "PUT", "PATCH"]) : "GET";
    return {
      method,
      path,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(method === "GET" ? {} : { body: rnd.pick(["{}", "null", `{"a":"\u0000"}`]) }),
    };
  },
  webhook: (rnd, f) => {
    const paymentId = `pay_fuzz_${rnd.int(1e9)}_${rnd.int(1e9)}`;
    const bodies = [
      "null",
      "",
      "not json",
      "[]",
      "42",
      '"text"',
      `{"type":"Transaction.Paid","data":${"[".repeat(5_000)}${"]".repeat(5_000)}}`,
      `{"type":"Transaction.Paid","data":{"paymentId":"${rnd.pick(["\\u0000", "\\ud800", "a\\udc00"])}"}}`,
      `{"${rnd.pick(["\\u0000", "\\ud800"])}":1}`,
      JSON.stringify({
        imp_uid: `imp_${rnd.int(1e9)}`,
        merchant_uid: `order-${rnd.int(1e9)}`,
        status: "paid",
      }),
      JSON.stringify({
        payment_id: paymentId,
        tx_id: "tx",
        status: rnd.pick(["Paid", "Cancelled", "Bogus"]),
      }),
      JSON.stringify({
        type: "Transaction.Paid",
        timestamp: "",
        data: { paymentId, storeId: "store-other" },
      }),
      JSON.stringify({ type: rnd.pick(["Transaction.Paid", "Transaction.Cancelled"]), data: { paymentId } }),
      JSON.stringify({ type: "Transaction.Paid", timestamp: "", data: { paymentId, storeId: f.storeId } }),
      JSON.stringify({ type: "BillingKey.Deleted", data: { billingKey: `bk-${rnd.int(1e9)}` } }),
      JSON.stringify({ type: "Unknown.Event", data: wrongValue(rnd) }),
      JSON.stringify({ type: wrongValue(rnd), data: wrongValue(rnd) }),
      JSON.stringify({
        type: "Transaction.Paid",
        data: { paymentId: wrongValue(rnd), storeId: wrongValue(rnd) },
      }),
    ];
    return {
      method: "POST",
      path: "/webhook",
      headers: { "content-type": "application/json" },
      body: rnd.pick(bodies),
      // signed later (the signature needs the final id and body)
    };
  },
};

/** Signs a webhook request, or damages its signature, id or timestamp on purpose. */
async function signForWebhook(rnd: Random, request: FuzzRequest, secret: string): Promise<FuzzRequest> {
  const body = typeof request.body === "string" ? request.body : "";
  let webhookId = rnd.int(10) === 0 ? `msg_${"x".repeat(257 + rnd.int(500))}` : `msg_fuzz_${rnd.int(1e12)}`;
  const now = Math.floor(Date.now() / 1000);
  let timestamp = String(now);
  const roll = rnd.int(10);
  if (roll === 0) timestamp = String(now - 3600);
  const signature = await signWebhook(secret, webhookId, timestamp, body);
  const headers: Record<string, string> = {
    ...request.headers,
    "webhook-id": webhookId,
    "webhook-timestamp": timestamp,
    "webhook-signature": signature,
  };
  if (roll === 1) headers["webhook-signature"] = "v1,AAAA";
  if (roll === 2) delete headers["webhook-signature"];
  if (roll === 3) {
    webhookId = `${webhookId}-tampered`;
    headers["webhook-id"] = webhookId;
  }
  if (roll === 4) return badTransport(rnd, { ...request, headers });
  return { ...request, headers };
}

// ---------------------------------------------------------------------------------------------------
// State and answers

interface TableDigest {
  readonly rows: number;
  readonly digest: string | null;
}

async function snapshot(sql: ReturnType<typeof postgres>): Promise<Map<string, TableDigest>> {
  const tables = await sql<{ schema: string; name: string }[]>`
    select table_schema as schema, table_name as name from information_schema.tables
    where table_schema in ('public', 'auth') and table_type = 'BASE TABLE' order by 1, 2`;
  const result = new Map<string, TableDigest>();
  for (const { schema, name } of tables) {
    const [row] = await sql.unsafe<{ rows: number; digest: string | null }[]>(
      `select count(*)::int as rows, md5(string_agg(md5(t::text), '' order by md5(t::text))) as digest
       from "${schema}"."${name}" t`,
    );
    result.set(`${schema}.${name}`, { rows: row!.rows, digest: row!.digest });
  }
  return result;
}

const webhookReceipts = new Set(["malformed", "unsupported_format", "ignored", "duplicate"]);

/** Why an answer is not a documented one, or null when it is. */
function undocumented(fn: string, request: FuzzRequest, status: number, body: unknown): string | null {
  if (status >= 500) return `a ${status}`;
  if (status === 204) return request.method === "OPTIONS" ? null : "204 to a non-preflight";
  if (status >= 200 && status < 300) {
    if (fn === "webhook") {
      const outcome = (body as { status?: unknown })?.status;
      return webhookReceipts.has(String(outcome)) ? null : `webhook answered ${String(outcome)}`;
    }
    // reads change nothing; the table comparison proves it
    if (request.method === "GET" && ["billing-key", "identity-verification", "admin"].includes(fn)) {
      return null;
    }
    return `a ${status} to a request that should have been refused`;
  }
  const code = (body as { error?: { code?: unknown } })?.error?.code;
  if (typeof code !== "string" || !(code in errorStatus)) {
    return `code ${String(code)} is not in the catalogue`;
  }
  if (errorStatus[code as keyof typeof errorStatus] !== status) return `code ${code} with status ${status}`;
  return null;
}

function describe(request: FuzzRequest): string {
  const body = request.body instanceof Uint8Array
    ? `bytes ${[...request.body].join(",")}`
    : JSON.stringify((request.body ?? "").slice(0, 400)) + ((request.body?.length ?? 0) > 400 ? "…" : "");
  const headers = Object.fromEntries(
    Object.entries(request.headers).map(([k, v]) => [k, v.length > 80 ? `${v.slice(0, 80)}…` : v]),
  );
  return `${request.method} ${request.path} headers=${JSON.stringify(headers)} body=${body}`;
}

async function fixtures(app: TestApp): Promise<Fixtures> {
  const user = await app.createUser();
  const admin = await app.createUser({ admin: true });
  const gone = await app.createUser();
  await app.deps.sql`delete from auth.users where id = ${gone.id}`;
  const product = await app.createProduct({ price: 15000, name: "퍼즈 상품" });
  const paidOrder = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const { body: checkout } = await app.call("prepare", { user, body: { orderId: paidOrder.id } });
  app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
  assert.equal((await app.call("confirm", { user, body: { paymentId: checkout.paymentId } })).status, 200);
  const pending = await app.createOrder(user, [{ productId: product, quantity: 2 }]);
  const billingKey = app.sandbox.issueBillingKey({
    customerId: user.id,
    card: { number: "5365101234569012" },
  });
  const registered = await app.call("billing-key", { user, body: { billingKey } });
  assert.equal(registered.status, 200, JSON.stringify(registered.body));
  await app.sandbox.idle();

  const kid = (JSON.parse(testJwks) as { keys: { kid: string }[] }).keys[0]!.kid;
  const otherAlgorithm = async (alg: string, keyId: string) => {
    const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    return await new jose.SignJWT({ role: "authenticated", app_metadata: { payments_admin: true } })
      .setProtectedHeader({ alg, kid: keyId, typ: "JWT" })
      .setSubject(user.id)
      .setAudience("authenticated")
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(privateKey);
  };
  const hs256 = await new jose.SignJWT({ role: "authenticated" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(user.id)
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode("not-the-project-secret-0123456789abcdef"));
  return {
    tokens: {
      valid: user.token,
      admin: admin.token,
      bad: [
        gone.token,
        await signAccessToken(gone.id, { admin: true }),
        await signAccessToken(user.id, { forged: true }),
        await signAccessToken(admin.id, { forged: true, admin: true }),
        await signAccessToken(user.id, { expiresInSeconds: -30 }),
        await signAccessToken(user.id, { role: "anon" }),
        await signAccessToken(user.id, { role: "service_role" }),
        await signAccessToken(user.id, { audience: "someone-else" }),
        await otherAlgorithm("RS256", kid),
        await otherAlgorithm("ES384", kid),
        await otherAlgorithm("PS256", kid),
        await otherAlgorithm("EdDSA", kid),
        await otherAlgorithm("ES256", `unknown-${crypto.randomUUID()}`),
        hs256,
        `${btoa(JSON.stringify({ alg: "none", kid }))}.${btoa(JSON.stringify({ sub: user.id }))}.`
          .replaceAll("=", ""),
        "a.b.c",
        "eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
        user.token.slice(0, -4) + "AAAA",
      ],
    },
    orderId: pending.id,
    paymentId: checkout.paymentId,
    billingKeyId: String(registered.body.id),
    storeId: app.sandbox.storeId,
  };
}

Deno.test("fuzz: generated bad requests get documented 4xx answers and change nothing", async (t) => {
  const fuzzUrl = Deno.env.get("FUZZ_DATABASE_URL");
  assert.ok(fuzzUrl, "FUZZ_DATABASE_URL is set by `deno task test` (a private copy of the database)");
  // Supabase Auth on loopback: its key set, and its answer to a token it did not sign (legacy HS256 path)
  const authServer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    if (new URL(request.url).pathname === "/auth/v1/.well-known/jwks.json") return new Response(testJwks);
    return Response.json({ code: 403, error_code: "bad_jwt", msg: "invalid JWT" }, { status: 403 });
  });
  await using app = await startTestApp({
    env: { DATABASE_URL: fuzzUrl, SUPABASE_URL: `http://127.0.0.1:${authServer.addr.port}` },
  });
  const observer = postgres(fuzzUrl, { max: 1, onnotice: () => {} });
  try {
    const fixture = await fixtures(app);
    const portoneWrites = () => app.sandbox.requests().filter((r) => r.method !== "GET").length;
    const tally: Record<string, Record<number, number>> = {};
    const started = performance.now();
    for (const [fn, generate] of Object.entries(generators)) {
      await t.step(`${fn}: ${count} requests (seed ${seed})`, async () => {
        const rnd = random(seed * 7919 + fn.length * 104729 + fn.charCodeAt(0));
        const before = await snapshot(observer);
        const writesBefore = portoneWrites();
        const linesBefore = capturedLogLines.length;
        const statuses: Record<number, number> = {};
        for (let i = 0; i < count; i++) {
          let request = generate(rnd, fixture);
          if (fn === "webhook") request = await signForWebhook(rnd, request, app.sandbox.webhookSecret);
          if (rnd.int(50) === 0) request = { ...request, method: "OPTIONS" };
          let status: number;
          let body: unknown;
          try {
            const target = app.functions[fn as keyof typeof app.functions];
            const response = await target.fetch(
              new Request(`http://127.0.0.1/functions/v1${request.path}`, {
                method: request.method,
                headers: request.headers,
                body: request.method === "GET" || request.method === "HEAD" ? undefined : request.body,
              }),
            );
            status = response.status;
            const text = await response.text();
            body = text ? JSON.parse(text) : null;
          } catch (error) {
            throw new Error(`FUZZ_SEED=${seed} ${fn} #${i}: threw ${error}\n  ${describe(request)}`);
          }
          statuses[status] = (statuses[status] ?? 0) + 1;
          const problem = undocumented(fn, request, status, body);
          if (problem) {
            assert.fail(
              `FUZZ_SEED=${seed} ${fn} #${i}: ${problem}: ${JSON.stringify(body)}\n  ${describe(request)}`,
            );
          }
        }
        const after = await snapshot(observer);
        for (const [table, digest] of before) {
          if (fn === "webhook" && table === "public.webhook_logs") continue;
          assert.deepEqual(after.get(table), digest, `FUZZ_SEED=${seed} ${fn}: ${table} changed`);
        }
        assert.equal(after.size, before.size);
        if (fn === "webhook") {
          const [webhookRows] = await observer<{ changed: number }[]>`
            select count(*)::int as changed from public.webhook_logs
            where status not in ('malformed', 'unsupported_format', 'ignored')`;
          assert.equal(webhookRows?.changed, 0, `FUZZ_SEED=${seed}: a fuzzed webhook was processed`);
        }
        assert.equal(portoneWrites(), writesBefore, `FUZZ_SEED=${seed} ${fn}: PortOne was asked to write`);
        // bad input is the caller's problem: it must not page anyone
        const errorLines = capturedLogLines.slice(linesBefore).filter((line) =>
          line.includes('"level":"error"')
        );
        assert.deepEqual(errorLines, [], `FUZZ_SEED=${seed} ${fn}: error-level log lines`);
        tally[fn] = statuses;
      });
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    // one line of figures for the record (a test's own output, not a log line of the functions)
    await Deno.stdout.write(
      new TextEncoder().encode(
        `fuzz: seed ${seed}, ${count}/function, ${seconds} s, ${JSON.stringify(tally)}\n`,
      ),
    );
  } finally {
    await observer.end();
    await authServer.shutdown();
  }
});

Deno.test("fuzz: every catalogue code is in the README's error table", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const table = readme.slice(readme.indexOf("### Error codes"));
  for (const code of Object.keys(errorStatus)) {
    assert.ok(new RegExp("\\|\\s*`" + code + "`\\s*\\|").test(table), `README lacks ${code}`);
  }
});
