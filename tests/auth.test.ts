/**
 * Access-token verification against a loopback stand-in for Supabase Auth (its key set and `/auth/v1/user`):
 * which failures are the caller's (401) and which are an outage (503), and that neither an unknown key id
 * nor an unreachable key set costs a fetch per request. Plus the bounds on input walking and hashing.
 */
import assert from "node:assert/strict";
import { createAccessTokenVerifier } from "../shared/infra/auth.ts";
import { AppError } from "../shared/infra/errors.ts";
import { canonicalJson } from "../shared/infra/idempotency.ts";
import { findJsonInputProblem } from "../shared/infra/input-text.ts";
import { signAccessToken, testJwks } from "./support/auth.ts";
import { jose } from "./support/deps.ts";

interface AuthServer {
  readonly url: string;
  jwksFetches: number;
  userLookups: number;
  mode: "ok" | "down";
  close(): Promise<void>;
}

const legacyUserId = crypto.randomUUID();
const fixedHs256Header = btoa(JSON.stringify({ alg: "HS256", typ: "JWT" })).replaceAll("=", "");
const legacyPayload = btoa(JSON.stringify({ sub: legacyUserId, role: "authenticated" })).replaceAll("=", "");
/** The one HS256 token the stand-in for Supabase Auth accepts (it alone holds the project's secret). */
const legacyGoodToken = `${fixedHs256Header}.${legacyPayload}.c2lnbmVk`;

function startAuthServer(): AuthServer {
  const state = {
    jwksFetches: 0,
    userLookups: 0,
    mode: "ok" as "ok" | "down",
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/auth/v1/.well-known/jwks.json") {
      state.jwksFetches++;
      return state.mode === "down" ? new Response("upstream error", { status: 502 }) : new Response(testJwks);
    }
    if (path === "/auth/v1/user") {
      state.userLookups++;
      if (state.mode === "down") return new Response("unavailable", { status: 503 });
      if (request.headers.get("authorization") === `Bearer ${legacyGoodToken}`) {
        return Response.json({
          id: legacyUserId,
          role: "authenticated",
          aud: "authenticated",
          app_metadata: {},
        });
      }
      return Response.json({ code: 403, error_code: "bad_jwt", msg: "invalid JWT" }, { status: 403 });
    }
    return new Response("not found", { status: 404 });
  });
  return Object.assign(state, {
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  });
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AppError) return error.code;
    throw error;
  }
  return "accepted";
}

async function unknownKidToken(userId: string): Promise<string> {
  const { privateKey } = await jose.generateKeyPair("ES256");
  return await new jose.SignJWT({ role: "authenticated" })
    .setProtectedHeader({ alg: "ES256", kid: `unknown-${crypto.randomUUID()}` })
    .setSubject(userId)
    .setAudience("authenticated")
    .setExpirationTime("5m")
    .sign(privateKey);
}

Deno.test("access tokens: 401 for the caller's faults, 503 only when Supabase Auth is out of reach", async (t) => {
  const auth = startAuthServer();
  const active = new Set<string>();
  const verifier = (jwks: { keys: JsonWebKey[] } | undefined) =>
    createAccessTokenVerifier({
      supabaseUrl: auth.url,
      anonKey: "anon",
      jwks,
      isActiveUser: (id) => Promise.resolve(active.has(id)),
    });
  try {
    const userId = crypto.randomUUID();
    active.add(userId);
    active.add(legacyUserId);

    await t.step(
      "no configured keys: fetched once, then used; unknown key ids refetch at most once",
      async () => {
        const verify = verifier(undefined);
        assert.deepEqual(await verify(await signAccessToken(userId)), { userId, isAdmin: false });
        assert.deepEqual(await verify(await signAccessToken(userId, { admin: true })), {
          userId,
          isAdmin: true,
        });
        assert.equal(auth.jwksFetches, 1);
        for (let i = 0; i < 20; i++) {
          assert.equal(await refusal(verify(await unknownKidToken(userId))), "unauthorized");
        }
        assert.ok(auth.jwksFetches <= 2, `${auth.jwksFetches} fetches`);
      },
    );

    await t.step("key set unreachable and none configured → 503, without a fetch per request", async () => {
      auth.mode = "down";
      const before = auth.jwksFetches;
      const verify = verifier(undefined);
      for (let i = 0; i < 20; i++) {
        assert.equal(await refusal(verify(await signAccessToken(userId))), "auth_unavailable");
      }
      assert.equal(auth.jwksFetches - before, 1);
      auth.mode = "ok";
    });

    await t.step("configured keys: unknown key ids are 401 even while the key set is down", async () => {
      auth.mode = "down";
      const before = auth.jwksFetches;
      const verify = verifier(JSON.parse(testJwks));
      assert.deepEqual(await verify(await signAccessToken(userId)), { userId, isAdmin: false });
      for (let i = 0; i < 20; i++) {
        assert.equal(await refusal(verify(await unknownKidToken(userId))), "unauthorized");
      }
      assert.equal(auth.jwksFetches - before, 1);
      auth.mode = "ok";
    });

    await t.step("a user no longer active → 401, whatever the token", async () => {
      const verify = verifier(JSON.parse(testJwks));
      const gone = crypto.randomUUID();
      assert.equal(await refusal(verify(await signAccessToken(gone))), "unauthorized");
      assert.equal(await refusal(verify(await signAccessToken(gone, { admin: true }))), "unauthorized");
    });

    await t.step("legacy HS256: Supabase Auth decides; 503 only when it cannot answer", async () => {
      const verify = verifier(JSON.parse(testJwks));
      const lookups = auth.userLookups;
      assert.deepEqual(await verify(legacyGoodToken), { userId: legacyUserId, isAdmin: false });
      const good = legacyGoodToken;
      assert.equal(await refusal(verify(`${fixedHs256Header}.${legacyPayload}.b3RoZXI`)), "unauthorized");
      assert.equal(auth.userLookups, lookups + 2);
      auth.mode = "down";
      assert.equal(await refusal(verify(good)), "auth_unavailable");
      auth.mode = "ok";
      const unreachable = createAccessTokenVerifier({
        supabaseUrl: "http://127.0.0.1:9",
        anonKey: "anon",
        jwks: undefined,
        isActiveUser: () => Promise.resolve(true),
      });
      assert.equal(await refusal(unreachable(good)), "auth_unavailable");
    });

    await t.step("malformed tokens are 401 without any fetch", async () => {
      const verify = verifier(JSON.parse(testJwks));
      const before = { jwks: auth.jwksFetches, user: auth.userLookups };
      for (const token of ["a.b.c", "eyJhbGciOiJub25lIn0.e30.", "eyJ9.e30.x", `${fixedHs256Header}`]) {
        assert.equal(await refusal(verify(token)), "unauthorized", token);
      }
      assert.deepEqual({ jwks: auth.jwksFetches, user: auth.userLookups }, before);
    });
  } finally {
    await auth.close();
  }
});

Deno.test("input walking and request hashing are bounded at any depth", () => {
  let deep: unknown = "leaf";
  for (let i = 0; i < 200_000; i++) deep = [deep];
  assert.deepEqual(findJsonInputProblem(deep), { reason: "too_deep", path: new Array(32).fill(0).join(".") });
  assert.throws(
    () => canonicalJson(deep),
    (error) => error instanceof AppError && error.code === "invalid_request",
  );
  assert.equal(canonicalJson({ b: [1, { d: 2, c: 3 }], a: "x" }), '{"a":"x","b":[1,{"c":3,"d":2}]}');
  assert.deepEqual(findJsonInputProblem({ a: [{ b: "x\u0000" }] }), {
    reason: "unstorable_text",
    path: "a.0.b",
  });
  assert.deepEqual(findJsonInputProblem({ ok: "💳", "\ud800": 1 }), { reason: "unstorable_text", path: "" });
  assert.equal(findJsonInputProblem({ ok: "💳 결제", n: [1, null, true] }), null);
});
