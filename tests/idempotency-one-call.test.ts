/**
 * The Idempotency-Key bookkeeping at its floor (issue #14): the claim is one statement that also checks the
 * request's requirements ("the order is the caller's") and carries the work's first read (prefetch), a
 * refused request records nothing, a work's last write and the key's completion share one round trip, and
 * concurrent requests under one key still run the work once. Round trips are counted at the wire, by the
 * bench's counting proxy.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { createSql } from "../shared/infra/db.ts";
import { AppError } from "../shared/infra/errors.ts";
import {
  type IdempotencyScope,
  ReplyWithWrite,
  type Requirement,
  withIdempotency,
} from "../shared/infra/idempotency.ts";
import { accessiblePayment, ownBillingKey, ownOrder } from "../shared/payments/ownership.ts";
import { startPgProxy } from "./bench/pg-proxy.ts";
import { startTestApp } from "./support/app.ts";
import { appDatabaseUrl } from "./support/test-database.ts";

async function outcome(promise: Promise<{ status: number; body: unknown; replayed: boolean }>) {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof AppError) return { status: error.status, code: error.code, message: error.message };
    return { status: 503, error: String(error) };
  }
}

const holds = (value: boolean, message = "refused"): Requirement => ({
  holds: (sql) => sql`${value}::boolean`,
  otherwise: () => new AppError("not_found", message),
});

Deno.test("withIdempotency: requirements, the pipelined last write, and one run per key", async (t) => {
  await using app = await startTestApp();
  const user = await app.createUser();
  const proxy = startPgProxy(appDatabaseUrl(), { count: true });
  const sql = createSql(proxy.url, { prepare: true });
  const scope = (key: string | null, requires?: Requirement[]): IdempotencyScope => ({
    userId: user.id,
    route: "one-call-test",
    key,
    request: { n: 1 },
    ...(requires ? { requires } : {}),
  });
  const rows = async (key: string) =>
    (await app.deps.sql<{ status: string; response_status: number | null }[]>`
      select status, response_status from public.idempotency_keys where user_id = ${user.id} and key = ${key}`)
      .map((row) => ({ ...row }));

  try {
    await t.step(
      "the first requirement that fails refuses the request, and nothing is recorded",
      async () => {
        const key = `refused-${crypto.randomUUID()}`;
        let ran = false;
        const refused = await outcome(withIdempotency(
          sql,
          scope(key, [holds(true), holds(false, "first refusal"), holds(false, "second refusal")]),
          () => {
            ran = true;
            return Promise.resolve({ ok: 1 });
          },
        ));
        assert.deepEqual(refused, { status: 404, code: "not_found", message: "first refusal" });
        assert.equal(ran, false, "the work did not run");
        assert.deepEqual(await rows(key), [], "no claim was written");
      },
    );

    await t.step("requirements that hold: claimed, run, stored and replayed", async () => {
      const key = `holds-${crypto.randomUUID()}`;
      const first = await outcome(
        withIdempotency(sql, scope(key, [holds(true), holds(true)]), () => Promise.resolve({ ok: 2 })),
      );
      assert.deepEqual(first, { status: 200, body: { ok: 2 }, replayed: false });
      const replay = await outcome(withIdempotency(sql, scope(key, [holds(true)]), () => {
        throw new Error("a replay must not run");
      }));
      assert.deepEqual(replay, { status: 200, body: { ok: 2 }, replayed: true });
    });

    await t.step("a reused key for another request is 422, with or without requirements", async () => {
      const key = `reused-${crypto.randomUUID()}`;
      await withIdempotency(sql, scope(key), () => Promise.resolve({ ok: 3 }));
      const other = await outcome(withIdempotency(
        sql,
        { ...scope(key, [holds(true)]), request: { n: 2 } },
        () => Promise.resolve({ never: true }),
      ));
      assert.deepEqual(other, {
        status: 422,
        code: "idempotency_key_reused",
        message: "This Idempotency-Key was used for a different request",
      });
    });

    await t.step("the last write and the key's completion share one round trip", async () => {
      const counted = async (lastWriteBeside: boolean) => {
        const key = `write-${crypto.randomUUID()}`;
        const marker = crypto.randomUUID();
        const write = () =>
          sql`update public.idempotency_keys set response_body = ${sql.json({ marker })}
              where user_id = ${user.id} and key = ${`${key}-target`}`;
        proxy.reset();
        const reply = await withIdempotency(sql, scope(key, [holds(true)]), async () => {
          if (lastWriteBeside) return new ReplyWithWrite({ ok: marker }, write());
          await write();
          return { ok: marker };
        });
        assert.deepEqual(reply, { status: 200, body: { ok: marker }, replayed: false });
        assert.deepEqual(await rows(key), [{ status: "completed", response_status: 200 }]);
        return proxy.counts().roundTrips;
      };
      await counted(true); // warm: every statement prepared
      await counted(false);
      const beside = await counted(true);
      const after = await counted(false);
      assert.equal(beside, 2, "the claim, then the write and the completion together");
      assert.equal(after, 3, "the claim, the write, the completion");
    });

    await t.step("a prefetch shares the claim's round trip and is handed to the work", async () => {
      const counted = async () => {
        const key = `prefetch-${crypto.randomUUID()}`;
        const marker = crypto.randomUUID();
        proxy.reset();
        const reply = await withIdempotency(
          sql,
          {
            ...scope(key, [holds(true)]),
            prefetch: (client) => client<{ marker: string }[]>`select ${marker} as marker`,
          },
          (prefetched) => Promise.resolve({ seen: prefetched[0]?.marker }),
        );
        assert.deepEqual(reply, { status: 200, body: { seen: marker }, replayed: false });
        return proxy.counts().roundTrips;
      };
      await counted(); // warm
      assert.equal(await counted(), 2, "the claim with the prefetch, then the completion");
    });

    await t.step("a prefetch that fails frees the claim at once; a refused request drops it", async () => {
      const key = `prefetch-fails-${crypto.randomUUID()}`;
      const failed = await outcome(withIdempotency(
        sql,
        { ...scope(key), prefetch: (client) => client`select 1 / 0` },
        () => Promise.resolve({ never: true }),
      ));
      assert.equal(failed.status, 503);
      assert.deepEqual(await rows(key), [], "the claim was released");
      const refused = await outcome(withIdempotency(
        sql,
        { ...scope(key, [holds(false, "not yours")]), prefetch: (client) => client`select 1 / 0` },
        () => Promise.resolve({ never: true }),
      ));
      assert.deepEqual(refused, { status: 404, code: "not_found", message: "not yours" });
      const retry = await outcome(withIdempotency(sql, scope(key), () => Promise.resolve({ ok: 7 })));
      assert.deepEqual(retry, { status: 200, body: { ok: 7 }, replayed: false });
    });

    await t.step("a last write that fails fails the request; a retry gets the stored reply", async () => {
      const key = `failing-${crypto.randomUUID()}`;
      const failed = await outcome(withIdempotency(
        sql,
        scope(key),
        () => Promise.resolve(new ReplyWithWrite({ ok: 5 }, sql`select 1 / 0`)),
      ));
      assert.equal(failed.status, 503);
      assert.match(String((failed as { error: string }).error), /division by zero/);
      const retry = await outcome(withIdempotency(sql, scope(key), () => {
        throw new Error("the stored reply answers the retry");
      }));
      assert.deepEqual(retry, { status: 200, body: { ok: 5 }, replayed: true });
    });

    await t.step("without a key: requirements are not evaluated, the last write is awaited", async () => {
      const marker = `no-key-${crypto.randomUUID()}`;
      const reply = await withIdempotency(
        sql,
        scope(null, [holds(false)]),
        () =>
          Promise.resolve(
            new ReplyWithWrite(
              { ok: 6 },
              sql`insert into public.idempotency_keys (user_id, route, key, request_hash, status, response_status,
                                                       response_body, completed_at)
                  values (${user.id}, 'one-call-test', ${marker}, ${
                "0".repeat(64)
              }, 'completed', 200, '{}', now())`,
            ),
          ),
      );
      assert.deepEqual(reply, { status: 200, body: { ok: 6 }, replayed: false });
      assert.deepEqual(await rows(marker), [{ status: "completed", response_status: 200 }]);
    });

    await t.step(
      "the ownership requirements hold for their owner only (a payment: or an admin)",
      async () => {
        const other = await app.createUser();
        const product = await app.createProduct({ price: 1_000 });
        const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
        const prepared = await app.call("prepare", { user, body: { orderId: order.id } });
        assert.equal(prepared.status, 200);
        const billingKey = app.sandbox.issueBillingKey({ customerId: user.id });
        const saved = await app.call("billing-key", { user, body: { billingKey } });
        assert.equal(saved.status, 200);
        const evaluate = async (requirement: Requirement) => {
          const [row] = await sql<{ holds: boolean }[]>`select (${requirement.holds(sql)}) as holds`;
          return row!.holds;
        };
        const owner = { userId: user.id, isAdmin: false };
        const stranger = { userId: other.id, isAdmin: false };
        const admin = { userId: other.id, isAdmin: true };
        assert.deepEqual(
          await Promise.all([
            evaluate(ownOrder(owner, order.id)),
            evaluate(ownOrder(stranger, order.id)),
            evaluate(ownOrder(admin, order.id)),
            evaluate(ownBillingKey(owner, saved.body.id)),
            evaluate(ownBillingKey(stranger, saved.body.id)),
            evaluate(accessiblePayment(owner, prepared.body.paymentId)),
            evaluate(accessiblePayment(stranger, prepared.body.paymentId)),
            evaluate(accessiblePayment(admin, prepared.body.paymentId)),
            evaluate(accessiblePayment(admin, "pay_no_such_payment_000000000000")),
          ]),
          [true, false, false, true, false, true, false, true, false],
        );
        assert.deepEqual(
          [
            ownOrder(owner, order.id).otherwise(),
            ownBillingKey(owner, saved.body.id).otherwise(),
            accessiblePayment(owner, prepared.body.paymentId).otherwise(),
          ].map((e) => [e.status, e.code, e.message]),
          [
            [404, "not_found", "Order not found"],
            [404, "not_found", "Billing key not found"],
            [404, "not_found", "Payment not found"],
          ],
        );
      },
    );

    await t.step(
      "concurrent requests under one key on separate connections: the work runs once",
      async () => {
        const clients = Array.from({ length: 6 }, () => createSql(appDatabaseUrl(), { prepare: true }));
        try {
          for (let round = 0; round < 3; round++) {
            const key = `race-${round}-${crypto.randomUUID()}`;
            let runs = 0;
            const results = await Promise.all(
              clients.map((client) =>
                outcome(withIdempotency(client, scope(key, [holds(true)]), async () => {
                  runs++;
                  await new Promise((resolve) => setTimeout(resolve, 300));
                  return { ran: round };
                }))
              ),
            );
            assert.equal(runs, 1, `round ${round}: ${JSON.stringify(results)}`);
            const ran = results.filter((r) => r.status === 200 && !("replayed" in r && r.replayed));
            assert.equal(ran.length, 1, JSON.stringify(results));
            // the others came while it ran (409), or — on a slow machine — after it finished (its reply)
            for (const result of results.filter((r) => !ran.includes(r))) {
              assert.ok(
                isDeepStrictEqual(result, {
                  status: 409,
                  code: "request_in_progress",
                  message: "A request with this Idempotency-Key is in progress",
                }) || isDeepStrictEqual(result, { status: 200, body: { ran: round }, replayed: true }),
                JSON.stringify(result),
              );
            }
            const replay = await outcome(withIdempotency(clients[0]!, scope(key), () => {
              throw new Error("a replay must not run");
            }));
            assert.deepEqual(replay, { status: 200, body: { ran: round }, replayed: true });
          }
        } finally {
          await Promise.all(clients.map((client) => client.end()));
        }
      },
    );
  } finally {
    await sql.end();
    await proxy.close();
  }
});
