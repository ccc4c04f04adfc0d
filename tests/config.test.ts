import assert from "node:assert/strict";
import { channelKeyFor, ConfigError, readConfig } from "../shared/infra/config.ts";

const minimal = {
  PORTONE_API_SECRET: "secret",
  PORTONE_STORE_ID: "store-1",
  PORTONE_CHANNEL_KEY: "channel-default",
  SUPABASE_URL: "https://project.supabase.co",
  SUPABASE_DB_URL: "postgresql://postgres@db:5432/postgres",
};

Deno.test("readConfig() names every missing or malformed variable at once", () => {
  assert.throws(
    () => readConfig({ PORTONE_STORE_ID: "store-1", PORTONE_API_BASE: "ftp://x", SUPABASE_URL: "not a url" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual([...error.variables].sort(), [
        "PORTONE_API_BASE",
        "PORTONE_API_SECRET",
        "PORTONE_CHANNEL_KEY",
        "SUPABASE_URL",
      ]);
      assert.match(error.message, /PORTONE_API_SECRET is missing/);
      return true;
    },
  );
});

Deno.test("readConfig() applies defaults and lets DATABASE_URL override SUPABASE_DB_URL", () => {
  const config = readConfig({ ...minimal, DATABASE_URL: "postgres://pooler:6543/postgres" });
  assert.equal(config.portone.apiBase, "https://api.portone.io");
  // production-safe: only LIVE channels pay orders unless the store is declared a test store
  assert.equal(config.portone.requireLiveChannel, true);
  assert.equal(config.portone.billingChannelKey, "channel-default");
  assert.equal(config.identityVerificationMaxAgeSeconds, 600);
  assert.equal(config.dataEncryptionKeys, undefined);
  assert.equal(config.database.url, "postgres://pooler:6543/postgres");
  assert.equal(config.database.poolMax, 1);
  assert.deepEqual(config.portone.webhookSecrets, []);
});

Deno.test("readConfig() requires what a function needs", () => {
  assert.throws(() => readConfig(minimal, ["webhook"]), /PORTONE_WEBHOOK_SECRET is missing/);
  assert.throws(() => readConfig(minimal, ["identity"]), /IDENTITY_CI_PEPPER is missing/);
  assert.throws(
    () => readConfig({ ...minimal, PORTONE_WEBHOOK_SECRET: "plain" }),
    /PORTONE_WEBHOOK_SECRET must look like whsec_/,
  );
  assert.throws(
    () => readConfig({ ...minimal, IDENTITY_CI_PEPPER: "short" }),
    /IDENTITY_CI_PEPPER must be at least 32/,
  );
  const { SUPABASE_DB_URL: _, ...noDatabase } = minimal;
  assert.throws(() => readConfig(noDatabase), /SUPABASE_DB_URL is missing/);
});

Deno.test("readConfig() reads secrets for rotation, the LIVE flag, JWKS and per-method channels", () => {
  const config = readConfig({
    ...minimal,
    PORTONE_WEBHOOK_SECRET: "whsec_bmV3LXNlY3JldC0xMjM0NTY3OA==",
    PORTONE_WEBHOOK_SECRET_PREVIOUS: "whsec_b2xkLXNlY3JldC0xMjM0NTY3OA==",
    PORTONE_STORE_MODE: "test",
    PORTONE_CHANNEL_KEYS: JSON.stringify({ EASY_PAY: "channel-easy", CARD: "channel-card" }),
    SUPABASE_JWKS: JSON.stringify([{ kty: "EC", crv: "P-256", x: "x", y: "y", kid: "a" }, {
      kty: "oct",
      k: "s",
    }]),
  });
  assert.deepEqual(config.portone.webhookSecrets, [
    "whsec_bmV3LXNlY3JldC0xMjM0NTY3OA==",
    "whsec_b2xkLXNlY3JldC0xMjM0NTY3OA==",
  ]);
  assert.equal(config.portone.requireLiveChannel, false);
  assert.equal(config.portone.billingChannelKey, "channel-card", "saved cards default to the CARD channel");
  assert.equal(config.supabase.jwks?.keys.length, 1, "symmetric keys are dropped");
  assert.equal(channelKeyFor(config, "EASY_PAY"), "channel-easy");
  assert.equal(channelKeyFor(config, "CARD"), "channel-card");
  assert.equal(channelKeyFor(config, undefined), "channel-default");
  assert.throws(
    () => readConfig({ ...minimal, PORTONE_CHANNEL_KEYS: '{"BITCOIN":"x"}' }),
    /PORTONE_CHANNEL_KEYS/,
  );
  assert.throws(() => readConfig({ ...minimal, SUPABASE_JWKS: "{}" }), /SUPABASE_JWKS/);
  // jose builds the key set at the first token; a set it would refuse stops the function at startup instead
  for (const keys of ["[1]", '{"keys":[null]}', '{"keys":[["kty"]]}']) {
    assert.throws(() => readConfig({ ...minimal, SUPABASE_JWKS: keys }), /SUPABASE_JWKS must be a JWKS JSON/);
  }
});

Deno.test("readConfig(): ALERT_WEBHOOK_URL is optional, must be http(s), and a bad one is not echoed", () => {
  assert.equal(readConfig(minimal).alertWebhookUrl, undefined);
  const url = "https://hooks.slack.com/services/T000/B000/abcdefghijklmnop";
  assert.equal(readConfig({ ...minimal, ALERT_WEBHOOK_URL: url }).alertWebhookUrl, url);
  const secretish = "ftp://hooks.example/very-secret-path";
  assert.throws(
    () => readConfig({ ...minimal, ALERT_WEBHOOK_URL: secretish }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.variables, ["ALERT_WEBHOOK_URL"]);
      assert.ok(!error.message.includes("very-secret-path"));
      return true;
    },
  );
});

Deno.test("readConfig() fails closed on the replaced LIVE flag and a bad store mode", () => {
  for (const value of ["false", "true"]) {
    assert.throws(
      () => readConfig({ ...minimal, PORTONE_REQUIRE_LIVE_CHANNEL: value }),
      /PORTONE_REQUIRE_LIVE_CHANNEL is replaced by PORTONE_STORE_MODE/,
    );
  }
  assert.throws(() => readConfig({ ...minimal, PORTONE_STORE_MODE: "sandbox" }), /PORTONE_STORE_MODE/);
});

Deno.test("readConfig() reads the data-encryption keyring, newest first, and refuses bad keys", () => {
  const key = (fill: string) => btoa(fill.repeat(32));
  const config = readConfig(
    { ...minimal, DATA_ENCRYPTION_KEYS: `k2:${key("a")}, k1:${key("b")}` },
    ["encryption"],
  );
  assert.deepEqual(config.dataEncryptionKeys?.map((k) => [k.id, k.key.length]), [["k2", 32], ["k1", 32]]);
  assert.throws(() => readConfig(minimal, ["encryption"]), /DATA_ENCRYPTION_KEYS is missing/);
  for (const bad of [`k1:${btoa("short")}`, `k1:${key("a")},k1:${key("b")}`, `bad id:${key("a")}`, " , "]) {
    assert.throws(() => readConfig({ ...minimal, DATA_ENCRYPTION_KEYS: bad }), /DATA_ENCRYPTION_KEYS/, bad);
  }
});

Deno.test("readConfig() says what a bad number, choice or URL must be, without echoing the value", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORTONE_TIMEOUT_MS: "99" }, /PORTONE_TIMEOUT_MS must be an integer from 100 to 120000/],
    [{ PORTONE_TIMEOUT_MS: "1.5" }, /PORTONE_TIMEOUT_MS must be an integer/],
    [{ DB_POOL_MAX: "" }, /DB_POOL_MAX must be an integer from 1 to 20/],
    [{ DB_POOL_MAX: "abc" }, /DB_POOL_MAX must be an integer from 1 to 20/],
    [{ CUSTOMER_CANCEL_POLICY: "maybe" }, /CUSTOMER_CANCEL_POLICY must be one of deny, allow/],
    [{ SUPABASE_URL: "https:project.supabase.co" }, /SUPABASE_URL must be an http\(s\) URL/],
    [{ PORTONE_API_BASE: "ftp://api.portone.io" }, /PORTONE_API_BASE must be an http\(s\) URL/],
    [{ PORTONE_CHANNEL_KEYS: '{"CARD":"  "}' }, /PORTONE_CHANNEL_KEYS must be a JSON object mapping/],
    [{ PORTONE_CHANNEL_KEYS: '["CARD"]' }, /PORTONE_CHANNEL_KEYS must be a JSON object mapping/],
    [{ PORTONE_API_SECRET: "   " }, /PORTONE_API_SECRET must not be empty/],
  ];
  for (const [override, expected] of cases) {
    assert.throws(() => readConfig({ ...minimal, ...override }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, expected);
      const value = Object.values(override)[0]!.trim();
      if (value.length > 3) assert.ok(!error.message.includes(value), `echoes ${value}`);
      return true;
    }, JSON.stringify(override));
  }
  // values are read as before: trimmed keys, numbers from text, URLs kept as written
  const config = readConfig({
    ...minimal,
    PORTONE_STORE_ID: "  store-1 ",
    PORTONE_TIMEOUT_MS: " 2500 ",
    PORTONE_CHANNEL_KEYS: '{"CARD":" channel-card "}',
    SUPABASE_URL: " https://project.supabase.co/ ",
  });
  assert.equal(config.portone.storeId, "store-1");
  assert.equal(config.portone.timeoutMs, 2500);
  assert.equal(channelKeyFor(config, "CARD"), "channel-card");
  assert.equal(config.supabase.url, "https://project.supabase.co/");
});
