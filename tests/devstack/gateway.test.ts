/**
 * The gateway in-process with stand-in functions: routing (sub-paths, the original URL passed through),
 * verify_jwt as config.toml sets it, CORS, and the JWKS endpoint. The real functions are covered by
 * journey.test.ts; these are the gateway's own rules.
 */
import assert from "node:assert/strict";
import type { Sql } from "../../shared/infra/deps.ts";
import { createGateway, type LoadedFunction } from "./gateway.ts";
import { loadDevKeys, userToken } from "./keys.ts";

Deno.test("devstack gateway", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "devstack-gateway-" });
  try {
    const keys = await loadDevKeys(`${dir}/key.json`);
    const seen: string[] = [];
    const echo = {
      fetch: (request: Request) => {
        seen.push(`${request.method} ${request.url} ${request.headers.get("x-test") ?? ""}`);
        return Promise.resolve(Response.json({ ok: true }));
      },
    };
    const functions = new Map<string, LoadedFunction>([
      ["private", { name: "private", verifyJwt: true, module: echo }],
      ["open", { name: "open", verifyJwt: false, module: echo }],
      ["broken", {
        name: "broken",
        verifyJwt: false,
        loadError: "ConfigError: PORTONE_API_SECRET is missing",
      }],
    ]);
    const gateway = createGateway({
      functions,
      keys,
      sql: null as unknown as Sql, // no route exercised here touches the database
      publicConfig: () => ({}),
      supabaseJsFile: "/nonexistent",
    });
    const base = "http://127.0.0.1:54321";

    await t.step("sub-paths and query strings reach the function as the original URL", async () => {
      const token = await userToken(keys, crypto.randomUUID());
      const url = `${base}/functions/v1/private/abc/pay?x=1`;
      const response = await gateway(
        new Request(url, { method: "POST", headers: { authorization: `Bearer ${token}`, "x-test": "kept" } }),
      );
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
      await response.body?.cancel();
      assert.deepEqual(seen, [`POST ${url} kept`]);
    });

    await t.step("verify_jwt = true refuses missing, foreign and non-JWT credentials", async () => {
      const foreign = await userToken(await loadDevKeys(`${dir}/other.json`), crypto.randomUUID());
      for (
        const [authorization, message] of [
          [undefined, "Missing authorization header"],
          [`Bearer ${foreign}`, "Invalid JWT"],
          ["Bearer sb_publishable_abc", "Invalid JWT"],
        ] as const
      ) {
        const response = await gateway(
          new Request(`${base}/functions/v1/private`, {
            method: "POST",
            headers: authorization ? { authorization } : {},
          }),
        );
        assert.equal(response.status, 401);
        assert.deepEqual(await response.json(), { code: 401, message });
      }
      const anon = await gateway(
        new Request(`${base}/functions/v1/private`, { headers: { authorization: `Bearer ${keys.anonKey}` } }),
      );
      assert.equal(anon.status, 200, "the anon key is a valid JWT, as on Supabase");
      await anon.body?.cancel();
    });

    await t.step("verify_jwt = false lets unauthenticated requests through", async () => {
      const response = await gateway(
        new Request(`${base}/functions/v1/open`, { method: "POST", body: "{}" }),
      );
      assert.equal(response.status, 200);
      await response.body?.cancel();
    });

    await t.step("preflight is answered by the gateway for any function", async () => {
      const response = await gateway(
        new Request(`${base}/functions/v1/private`, {
          method: "OPTIONS",
          headers: {
            origin: "http://localhost:3000",
            "access-control-request-headers": "authorization, x-foo",
          },
        }),
      );
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
      assert.equal(response.headers.get("access-control-allow-headers"), "authorization, x-foo");
      await response.body?.cancel();
    });

    await t.step("unknown and broken functions", async () => {
      const missing = await gateway(new Request(`${base}/functions/v1/nope`, { method: "POST" }));
      assert.equal(missing.status, 404);
      assert.deepEqual(await missing.json(), {
        code: "NOT_FOUND",
        message: "Requested function was not found",
      });
      const broken = await gateway(new Request(`${base}/functions/v1/broken`, { method: "POST" }));
      assert.equal(broken.status, 500);
      assert.match((await broken.json()).message, /PORTONE_API_SECRET is missing/);
    });

    await t.step("JWKS: the public key only, stable across loads of the key file", async () => {
      const response = await gateway(new Request(`${base}/auth/v1/.well-known/jwks.json`));
      const jwks = await response.json();
      assert.equal(jwks.keys.length, 1);
      assert.equal(jwks.keys[0].kid, keys.kid);
      assert.equal(jwks.keys[0].d, undefined, "no private part");
      const again = await loadDevKeys(`${dir}/key.json`);
      assert.equal(again.jwks, keys.jwks);
      assert.equal(again.anonKey, keys.anonKey);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
