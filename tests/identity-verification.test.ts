import assert from "node:assert/strict";
import { hashCi, maskName } from "../shared/identity/identity-verification.ts";
import { open } from "../shared/infra/encryption.ts";
import type { CompleteIdentityVerificationInput } from "./sandbox/customer.ts";
import { type CallInit, capturedLogLines, startTestApp, type TestApp, type TestUser } from "./support/app.ts";

/** Every CI and DI handed out in this file, for the log scan at the end. */
const secrets: string[] = [];

/** A distinct person: CI/DI are random so runs never collide on the database's UNIQUE ci_hash. */
function person(overrides: { id?: string; name?: string; operator?: "SKT" | "KT" | "LGU_MVNO" } = {}) {
  const ci = `ci-${crypto.randomUUID()}-${crypto.randomUUID()}`;
  const di = `di-${crypto.randomUUID()}`;
  secrets.push(ci, di);
  return {
    name: overrides.name ?? "홍길동",
    birthDate: "1990-01-02",
    gender: "MALE" as const,
    phoneNumber: "01012345678",
    operator: overrides.operator ?? ("SKT" as const),
    ci,
    di,
    isForeigner: false,
    ...(overrides.id !== undefined ? { id: overrides.id } : {}),
  };
}

/** The server issues the id to the signed-in user, as `prepare` does for payments. */
async function issue(app: TestApp, user: TestUser): Promise<string> {
  const { status, body } = await app.call("identity-verification", { user, path: "/prepare", body: {} });
  assert.equal(status, 200, JSON.stringify(body));
  assert.deepEqual(body, {
    identityVerificationId: body.identityVerificationId,
    storeId: app.sandbox.storeId,
    customer: { customerId: user.id },
  });
  assert.match(body.identityVerificationId, /^idv_[0-9a-f]{32}$/);
  return body.identityVerificationId;
}

/** An id issued to the user, then completed in the (sandbox's) Danal window. */
async function completed(
  app: TestApp,
  user: TestUser,
  input: Omit<CompleteIdentityVerificationInput, "identityVerificationId">,
): Promise<string> {
  const id = await issue(app, user);
  app.sandbox.completeIdentityVerification({ ...input, identityVerificationId: id });
  return id;
}

function verify(app: TestApp, user: TestUser, identityVerificationId: string) {
  return app.call("identity-verification", { user, body: { identityVerificationId } });
}

async function storedRows(app: TestApp, userId: string) {
  const rows = await app.deps.sql`
    select portone_identity_verification_id, store_id, ci_hash, di, name, name_masked, birth_date::text,
           gender, phone_number, operator, is_foreigner, personal_data
    from public.identity_verifications where user_id = ${userId}`;
  return rows.map((row) => ({ ...row }));
}

Deno.test("maskName() keeps only the first and last character", () => {
  assert.equal(maskName("홍길동"), "홍*동");
  assert.equal(maskName("남궁길동"), "남**동");
  assert.equal(maskName("김수"), "김*");
  assert.equal(maskName("이"), "*");
  assert.equal(maskName("John Smith"), "J********h");
});

Deno.test("hashCi() is a keyed HMAC-SHA256, not the CI or a plain hash", async () => {
  const a = await hashCi("pepper-one-0123456789abcdef0123456789", "same-ci");
  const b = await hashCi("pepper-two-0123456789abcdef0123456789", "same-ci");
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, b);
  assert.equal(a, await hashCi("pepper-one-0123456789abcdef0123456789", "same-ci"));
});

Deno.test("identity-verification", async (t) => {
  await using app = await startTestApp({ sandbox: { otherStoreIds: ["store-other"] } });
  const pepper = app.deps.config.identityCiPepper!;

  await t.step("GET before any verification → { verified: false }", async () => {
    const user = await app.createUser();
    const { status, body } = await app.call("identity-verification", { user, method: "GET" });
    assert.equal(status, 200);
    assert.deepEqual(body, { verified: false });
  });

  await t.step("a VERIFIED verification is stored with the carrier; CI only as a keyed hash", async () => {
    const user = await app.createUser();
    const customer = person({ id: user.id, operator: "KT" });
    const id = await completed(app, user, { customer });
    const { status, body } = await verify(app, user, id);
    assert.equal(status, 200);
    assert.deepEqual(body, {
      verified: true,
      nameMasked: "홍*동",
      operator: "KT",
      isForeigner: false,
      verifiedAt: body.verifiedAt,
    });
    assert.ok(!Number.isNaN(Date.parse(body.verifiedAt)));
    const [stored] = await storedRows(app, user.id);
    // DI and the personal details exist only sealed, bound to this user's row
    assert.deepEqual(stored, {
      portone_identity_verification_id: id,
      store_id: app.sandbox.storeId,
      ci_hash: await hashCi(pepper, customer.ci),
      di: null,
      name: null,
      name_masked: "홍*동",
      birth_date: null,
      gender: null,
      phone_number: null,
      operator: "KT",
      is_foreigner: false,
      personal_data: stored?.personal_data,
    });
    const sealed = String(stored?.personal_data);
    for (
      const secret of [customer.ci, customer.di, customer.name, customer.phoneNumber, customer.birthDate]
    ) {
      assert.ok(!sealed.includes(secret), "the sealed column holds no personal detail in the clear");
    }
    const keys = app.deps.config.dataEncryptionKeys!;
    assert.deepEqual(
      JSON.parse(await open(keys, sealed, `identity_verifications.personal_data:${user.id}`)),
      {
        di: customer.di,
        name: "홍길동",
        birthDate: "1990-01-02",
        gender: "MALE",
        phoneNumber: "01012345678",
      },
    );
    await assert.rejects(open(keys, sealed, `identity_verifications.personal_data:${crypto.randomUUID()}`));
    const [raw] = await app.deps.sql`
      select count(*)::int as n from public.identity_verifications
      where ci_hash = ${customer.ci} or position(${customer.ci} in di) > 0 or position(${customer.ci} in name) > 0`;
    assert.equal(raw?.n, 0, "the raw CI is nowhere in the table");

    const read = await app.call("identity-verification", { user, method: "GET" });
    assert.equal(read.status, 200);
    assert.deepEqual(read.body, body);
    const text = JSON.stringify(read.body);
    for (const secret of [customer.ci, customer.di, customer.name, customer.phoneNumber]) {
      assert.ok(!text.includes(secret), "GET never returns CI, DI or personal details");
    }
  });

  await t.step(
    "a verification that is not VERIFIED → 409 identity_not_verified, nothing stored",
    async () => {
      const user = await app.createUser();
      for (const status of ["READY", "FAILED"] as const) {
        const id = await completed(app, user, { status, customer: person() });
        const { status: code, body } = await verify(app, user, id);
        assert.equal(code, 409);
        assert.equal(body.error.code, "identity_not_verified");
      }
      assert.deepEqual(await storedRows(app, user.id), []);
    },
  );

  await t.step("another store's verification or an unknown id → 404", async () => {
    const user = await app.createUser();
    const elsewhere = await completed(app, user, { storeId: "store-other", customer: person() });
    for (const id of [elsewhere, `idv_${"0".repeat(32)}`]) {
      const { status, body } = await verify(app, user, id);
      assert.equal(status, 404);
      assert.equal(body.error.code, "not_found");
    }
    assert.deepEqual(await storedRows(app, user.id), []);
  });

  await t.step("the same person on a second account → 409 identity_already_linked", async () => {
    const first = await app.createUser();
    const second = await app.createUser();
    const customer = person();
    assert.equal((await verify(app, first, await completed(app, first, { customer }))).status, 200);
    // a fresh verification of the same person (same CI) on another account
    const again = await verify(app, second, await completed(app, second, { customer }));
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "identity_already_linked");
    assert.deepEqual(await storedRows(app, second.id), []);
    assert.equal((await storedRows(app, first.id)).length, 1);
  });

  await t.step(
    "an id issued to A cannot be completed by B, with or without a customer id → 404",
    async () => {
      for (const withCustomerId of [true, false]) {
        const owner = await app.createUser();
        const intruder = await app.createUser();
        const id = await completed(app, owner, { customer: person(withCustomerId ? { id: owner.id } : {}) });
        const before = app.sandbox.requests().length;
        const claimed = await verify(app, intruder, id);
        assert.equal(claimed.status, 404);
        assert.equal(claimed.body.error.code, "not_found");
        assert.deepEqual(await storedRows(app, intruder.id), []);
        assert.equal(app.sandbox.requests().length, before, "PortOne is not even asked");
        // the real owner is not locked out
        assert.equal((await verify(app, owner, id)).status, 200);
      }
    },
  );

  await t.step(
    "replaying an id already linked to another account → 404, the first account keeps it",
    async () => {
      const first = await app.createUser();
      const second = await app.createUser();
      const id = await completed(app, first, { customer: person() });
      assert.equal((await verify(app, first, id)).status, 200);
      const replayed = await verify(app, second, id);
      assert.equal(replayed.status, 404);
      assert.deepEqual(await storedRows(app, second.id), []);
      assert.equal((await storedRows(app, first.id)).length, 1);
    },
  );

  await t.step("PortOne naming another customer id for the caller's own id → 404", async () => {
    const user = await app.createUser();
    const id = await completed(app, user, { customer: person({ id: crypto.randomUUID() }) });
    const { status, body } = await verify(app, user, id);
    assert.equal(status, 404);
    assert.equal(body.error.code, "not_found");
    assert.deepEqual(await storedRows(app, user.id), []);
  });

  await t.step("replays are idempotent; re-verifying the same person refreshes the row", async () => {
    const user = await app.createUser();
    const customer = person({ id: user.id });
    const id = await completed(app, user, { customer });
    const first = await verify(app, user, id);
    const replay = await verify(app, user, id);
    assert.equal(replay.status, 200);
    assert.deepEqual(replay.body, first.body);
    const before = await storedRows(app, user.id);
    assert.equal(before.length, 1);

    const fresh = await completed(app, user, { customer: { ...customer, operator: "LGU_MVNO" } });
    const renewed = await verify(app, user, fresh);
    assert.equal(renewed.status, 200);
    assert.equal(renewed.body.operator, "LGU_MVNO");
    const after = await storedRows(app, user.id);
    assert.equal(after.length, 1);
    assert.equal(after[0]?.portone_identity_verification_id, fresh);
    assert.equal(after[0]?.ci_hash, before[0]?.ci_hash);
  });

  await t.step("an account verified as one person cannot switch to another → 409", async () => {
    const user = await app.createUser();
    assert.equal((await verify(app, user, await completed(app, user, { customer: person() }))).status, 200);
    const before = await storedRows(app, user.id);
    const other = await verify(
      app,
      user,
      await completed(app, user, { customer: person({ name: "김철수" }) }),
    );
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, "identity_already_linked");
    assert.deepEqual(await storedRows(app, user.id), before);
  });

  await t.step("no token → 401", async () => {
    const { status, body } = await app.call("identity-verification", { method: "GET" });
    assert.equal(status, 401);
    assert.equal(body.error.code, "unauthorized");
  });

  await t.step("bad input → 4xx with a stable code, no write and no PortOne call", async () => {
    const user = await app.createUser();
    const id = await completed(app, user, { customer: person() });
    const cases: [string, CallInit, number, string][] = [
      ["an empty object", { body: {} }, 400, "invalid_request"],
      ["an extra field", { body: { identityVerificationId: id, ci: "x" } }, 400, "invalid_request"],
      ["a number", { body: { identityVerificationId: 42 } }, 400, "invalid_request"],
      ["an empty id", { body: { identityVerificationId: "" } }, 400, "invalid_request"],
      ["a path in the id", { body: { identityVerificationId: "../payments/x" } }, 400, "invalid_request"],
      [
        "an id we never issue",
        { body: { identityVerificationId: "identity-verification-1" } },
        400,
        "invalid_request",
      ],
      ["prepare with a field", { path: "/prepare", body: { customerId: user.id } }, 400, "invalid_request"],
      ["GET prepare", { path: "/prepare", method: "GET" }, 405, "method_not_allowed"],
      ["an array", { rawBody: JSON.stringify([{ identityVerificationId: id }]) }, 400, "invalid_request"],
      ["invalid JSON", { rawBody: "{" }, 400, "invalid_json"],
      ["a sub-path", { path: "/status", method: "GET" }, 404, "not_found"],
      ["DELETE", { method: "DELETE" }, 405, "method_not_allowed"],
      ["PUT", { method: "PUT", body: { identityVerificationId: id } }, 405, "method_not_allowed"],
    ];
    const portoneBefore = app.sandbox.requests().length;
    for (const [name, init, status, code] of cases) {
      const response = await app.call("identity-verification", { user, ...init });
      assert.equal(response.status, status, name);
      assert.equal(response.body.error.code, code, name);
    }
    assert.deepEqual(await storedRows(app, user.id), []);
    assert.equal(app.sandbox.requests().length, portoneBefore);
  });

  await t.step("no log line contains a CI or DI", () => {
    assert.ok(capturedLogLines.some((line) => line.includes("identity_verified")), "the flows logged");
    assert.ok(secrets.length > 0);
    for (const line of capturedLogLines) {
      for (const secret of secrets) assert.ok(!line.includes(secret), `a log line leaks a CI/DI: ${line}`);
    }
  });
});

Deno.test("identity-verification refuses a verification older than the configured age", async () => {
  // PortOne's clock an hour behind: every verification it completes is an hour old when we see it
  await using app = await startTestApp({
    sandbox: { clock: () => new Date(Date.now() - 3600_000) },
    env: { IDENTITY_MAX_AGE_SECONDS: "3000" },
  });
  const user = await app.createUser();
  const id = await completed(app, user, { customer: person({ id: user.id }) });
  const stale = await verify(app, user, id);
  assert.equal(stale.status, 409);
  assert.equal(stale.body.error.code, "identity_not_verified");
  assert.deepEqual(await storedRows(app, user.id), []);
});

Deno.test("identity-verification accepts a verification within the configured age", async () => {
  await using app = await startTestApp({
    sandbox: { clock: () => new Date(Date.now() - 3600_000) },
    env: { IDENTITY_MAX_AGE_SECONDS: "4000" },
  });
  const user = await app.createUser();
  const id = await completed(app, user, { customer: person({ id: user.id }) });
  assert.equal((await verify(app, user, id)).status, 200);
});
