/**
 * An Idempotency-Key claim never outlives its request for long (issue #17, observation 3): a request
 * that failed with a 5xx frees its key at once, also when the database was unreachable at that moment,
 * so the client's retry runs; a claim whose request died is taken over within the lease; only a
 * concurrent duplicate of a request that is still running gets 409 `request_in_progress`.
 *
 * The database "going away" is real: the function's client talks to the suite's database through a
 * loopback TCP proxy that the test cuts and restores (other tests share the server, so it stays up).
 */
import assert from "node:assert/strict";
import { createSql } from "../shared/infra/db.ts";
import { AppError } from "../shared/infra/errors.ts";
import { type ClaimTiming, defaultClaimTiming, withIdempotency } from "../shared/infra/idempotency.ts";
import { startTestApp } from "./support/app.ts";
import { startTcpProxy } from "./support/tcp-proxy.ts";
import { appDatabaseUrl } from "./support/test-database.ts";

const quick: ClaimTiming = { leaseMs: 1_000, heartbeatMs: 250 };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** withIdempotency's outcome as an HTTP status and code, the way the wrapper would answer. */
async function outcome(promise: Promise<{ status: number; body: unknown; replayed: boolean }>) {
  try {
    const reply = await promise;
    return { status: reply.status, body: reply.body, replayed: reply.replayed };
  } catch (error) {
    if (error instanceof AppError) return { status: error.status, code: error.code };
    return { status: 503, code: (error as { code?: string }).code ?? String(error) };
  }
}

Deno.test("idempotency claims after a failure, an outage and a dead request", async (t) => {
  await using app = await startTestApp();
  const user = await app.createUser();
  const proxy = startTcpProxy(appDatabaseUrl());
  const sql = createSql(proxy.url);
  const scope = (key: string) => ({ userId: user.id, route: "claims-test", key, request: { n: 1 } });
  const claimRow = async (key: string) => {
    const [row] = await app.deps.sql<{ status: string }[]>`
      select status from public.idempotency_keys where user_id = ${user.id} and key = ${key}`;
    return row?.status ?? null;
  };

  try {
    await t.step("a request whose connection was lost frees its key at once; the retry runs", async () => {
      const key = `lost-${crypto.randomUUID()}`;
      const failed = await outcome(
        withIdempotency(sql, scope(key), () => sql`select pg_terminate_backend(pg_backend_pid())`, quick),
      );
      assert.equal(failed.status, 503);
      assert.equal(await claimRow(key), null, "the claim is gone");
      const retry = await outcome(withIdempotency(sql, scope(key), () => Promise.resolve({ ok: 1 }), quick));
      assert.deepEqual(retry, { status: 200, body: { ok: 1 }, replayed: false });
    });

    await t.step(
      "the database unreachable when the claim is freed: the next request frees it first",
      async () => {
        const key = `outage-${crypto.randomUUID()}`;
        const failed = await outcome(withIdempotency(sql, scope(key), async () => {
          proxy.cut();
          return await sql`select 1`;
        }, quick));
        assert.equal(failed.status, 503);
        assert.equal(await claimRow(key), "in_progress", "the release could not get through");
        proxy.restore();
        const retry = await outcome(
          withIdempotency(sql, scope(key), () => Promise.resolve({ ok: 2 }), quick),
        );
        assert.deepEqual(retry, { status: 200, body: { ok: 2 }, replayed: false });
      },
    );

    await t.step(
      "a still-running request keeps its claim past the lease; its duplicate gets 409",
      async () => {
        const key = `running-${crypto.randomUUID()}`;
        const first = withIdempotency(sql, scope(key), async () => {
          await sleep(quick.leaseMs * 2.5);
          return { ok: 3 };
        }, quick);
        await sleep(quick.leaseMs * 1.8);
        const duplicate = await outcome(withIdempotency(app.deps.sql, scope(key), () => {
          throw new Error("a duplicate must not run");
        }, quick));
        assert.deepEqual(duplicate, { status: 409, code: "request_in_progress" });
        assert.deepEqual(await outcome(first), { status: 200, body: { ok: 3 }, replayed: false });
        const replay = await outcome(withIdempotency(app.deps.sql, scope(key), () => {
          throw new Error("a replay must not run");
        }, quick));
        assert.deepEqual(replay, { status: 200, body: { ok: 3 }, replayed: true });
      },
    );

    await t.step(
      "a claim whose request died with its isolate is taken over once the lease ran out",
      async () => {
        // the dying isolate: its database connection is cut for good, so it can neither renew nor release
        const deadProxy = startTcpProxy(appDatabaseUrl());
        const deadSql = createSql(deadProxy.url);
        const key = `dead-${crypto.randomUUID()}`;
        let finish: () => void = () => {};
        const stuck = new Promise<void>((resolve) => finish = resolve);
        const dying = outcome(withIdempotency(deadSql, scope(key), async () => {
          await stuck;
          return { never: "stored" };
        }));
        await sleep(300);
        deadProxy.cut();
        const started = performance.now();
        assert.deepEqual(
          await outcome(withIdempotency(sql, scope(key), () => Promise.resolve({ ok: 4 }))),
          { status: 409, code: "request_in_progress" },
        );
        let retry: Awaited<ReturnType<typeof outcome>> | null = null;
        while (performance.now() - started < defaultClaimTiming.leaseMs + 5_000) {
          await sleep(500);
          retry = await outcome(withIdempotency(sql, scope(key), () => Promise.resolve({ ok: 4 })));
          if (retry.status !== 409) break;
        }
        const waitedMs = Math.round(performance.now() - started);
        assert.deepEqual(retry, { status: 200, body: { ok: 4 }, replayed: false }, `after ${waitedMs} ms`);
        assert.ok(waitedMs <= defaultClaimTiming.leaseMs + 1_000, `taken over after ${waitedMs} ms`);
        // the dead request wakes up later: it must not overwrite the new owner's stored reply
        finish();
        await dying;
        await deadSql.end({ timeout: 0 });
        await deadProxy.close();
        const replay = await outcome(
          withIdempotency(sql, scope(key), () => Promise.resolve({ ok: "again" })),
        );
        assert.deepEqual(replay, { status: 200, body: { ok: 4 }, replayed: true });
      },
    );
  } finally {
    await sql.end({ timeout: 1 });
    await proxy.close();
  }
});

Deno.test("a billing charge whose reply was lost: the retry with its key answers with that charge", async () => {
  // what an outage can leave: the charge went through and a webhook marked the order paid, but the reply
  // was never stored and the key was freed (a 503); the client retries with the same Idempotency-Key
  await using app = await startTestApp();
  const user = await app.createUser();
  const billingKey = app.sandbox.issueBillingKey({
    customerId: user.id,
    card: { number: "4330-1234-5678-9012" },
  });
  const registered = await app.call("billing-key", { user, body: { billingKey } });
  assert.equal(registered.status, 200);
  const product = await app.createProduct({ price: 7_000, name: "정기 구독" });
  const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const key = `charge-${crypto.randomUUID()}`;
  const pay = () =>
    app.call("billing-key", {
      user,
      path: `/${registered.body.id}/pay`,
      body: { orderId: order.id },
      headers: { "idempotency-key": key },
    });
  const charges = () => app.sandbox.requests().filter((r) => r.operation === "payWithBillingKey").length;

  const first = await pay();
  assert.equal(first.status, 200, JSON.stringify(first.body));
  await app.deps.sql`delete from public.idempotency_keys where user_id = ${user.id} and key = ${key}`;
  const chargesBefore = charges();
  const retry = await pay();
  assert.equal(retry.status, 200, JSON.stringify(retry.body));
  assert.equal(retry.body.paymentId, first.body.paymentId);
  assert.equal(retry.body.status, "PAID");
  assert.equal(charges(), chargesBefore, "no second charge was attempted");
  const payments = await app.deps.sql`select id from public.payments where order_id = ${order.id}`;
  assert.equal(payments.length, 1);

  // another key for the paid order is still refused
  const other = await app.call("billing-key", {
    user,
    path: `/${registered.body.id}/pay`,
    body: { orderId: order.id },
    headers: { "idempotency-key": `charge-${crypto.randomUUID()}` },
  });
  assert.equal(other.status, 409);
  assert.equal(other.body.error.code, "order_not_payable");
});
