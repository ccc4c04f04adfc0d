import assert from "node:assert/strict";
import { startTestApp, type TestApp, type TestUser } from "./support/app.ts";

function cancel(
  app: TestApp,
  user: TestUser,
  body: Record<string, unknown>,
  key = `cancel-${crypto.randomUUID()}`,
) {
  return app.call("cancel", { user, body, headers: { "idempotency-key": key } });
}

function refundedAtPortOne(app: TestApp, paymentId: string): number {
  return app.sandbox.refunds().filter((r) => r.paymentId === paymentId).reduce((sum, r) => sum + r.amount, 0);
}

function cancelCalls(app: TestApp, paymentId: string): number {
  return app.sandbox.requests().filter((r) => r.operation === "cancelPayment" && r.path.includes(paymentId))
    .length;
}

async function stored(app: TestApp, paymentId: string) {
  const [row] = await app.deps.sql`
    select p.status, p.cancelled_amount, p.cancellable_amount, p.cancel_reserved_amount, o.status as order_status,
           (select count(*)::int from public.payment_cancellations c where c.payment_id = p.id and c.status = 'SUCCEEDED')
             as succeeded
    from public.payments p join public.orders o on o.id = p.order_id where p.id = ${paymentId}`;
  return { ...row };
}

Deno.test("cancel by the owner (CUSTOMER_CANCEL_POLICY=allow)", async (t) => {
  await using app = await startTestApp({ env: { CUSTOMER_CANCEL_POLICY: "allow" } });

  await t.step("a full cancel refunds everything and cancels the order", async () => {
    const { user, paymentId } = await app.paidPayment();
    const { status, body } = await cancel(app, user, { paymentId, reason: "단순 변심" });
    assert.equal(status, 200);
    assert.equal(body.status, "CANCELLED");
    assert.deepEqual({ amount: body.cancellation.amount, status: body.cancellation.status }, {
      amount: 10000,
      status: "SUCCEEDED",
    });
    assert.deepEqual([body.cancelledAmount, body.cancellableAmount], [10000, 0]);
    assert.equal(refundedAtPortOne(app, paymentId), 10000);
    assert.deepEqual(await stored(app, paymentId), {
      status: "CANCELLED",
      cancelled_amount: 10000,
      cancellable_amount: 0,
      cancel_reserved_amount: 0,
      order_status: "cancelled",
      succeeded: 1,
    });
  });

  await t.step("three partial cancels down to zero", async () => {
    const { user, paymentId } = await app.paidPayment();
    const steps = [[3000, "PARTIAL_CANCELLED", 7000], [5000, "PARTIAL_CANCELLED", 2000], [
      2000,
      "CANCELLED",
      0,
    ]] as const;
    for (const [amount, status, left] of steps) {
      const { body } = await cancel(app, user, { paymentId, amount, reason: "부분 취소" });
      assert.equal(body.status, status);
      assert.equal(body.cancellableAmount, left);
    }
    assert.equal(refundedAtPortOne(app, paymentId), 10000);
    assert.equal((await stored(app, paymentId)).succeeded, 3);
  });

  await t.step("over-cancel → 409 and PortOne is never called", async () => {
    const { user, paymentId } = await app.paidPayment();
    const { status, body } = await cancel(app, user, { paymentId, amount: 10001, reason: "초과" });
    assert.equal(status, 409);
    assert.equal(body.error.code, "cancel_amount_exceeds_cancellable");
    assert.equal(body.error.cancellableAmount, 10000);
    assert.equal(cancelCalls(app, paymentId), 0);
    assert.equal((await stored(app, paymentId)).cancel_reserved_amount, 0);
  });

  await t.step("a tax-free part above what is left → 409, PortOne never called", async () => {
    const { user, paymentId } = await app.paidPayment({ taxFree: 2000 });
    const { status, body } = await cancel(app, user, {
      paymentId,
      amount: 5000,
      taxFreeAmount: 3000,
      reason: "면세 초과",
    });
    assert.equal(status, 409);
    assert.equal(body.error.code, "cancel_amount_exceeds_cancellable");
    assert.equal(cancelCalls(app, paymentId), 0);
    const ok = await cancel(app, user, { paymentId, amount: 5000, taxFreeAmount: 2000, reason: "면세 포함" });
    assert.equal(ok.status, 200);
  });

  await t.step(
    "virtual account: no refund account → 400; a valid one is refunded to that account",
    async () => {
      const { user, paymentId } = await app.paidPayment({ method: "VIRTUAL_ACCOUNT" });
      const missing = await cancel(app, user, { paymentId, reason: "가상계좌 환불" });
      assert.equal(missing.status, 400);
      assert.equal(missing.body.error.code, "refund_account_required");
      for (
        const bad of [
          { bank: "NOT_A_BANK", number: "12345678", holderName: "홍길동" },
          { bank: "KOOKMIN", number: "1234-5678", holderName: "홍길동" },
          { bank: "KOOKMIN", number: "12345678", holderName: "" },
          { bank: "KOOKMIN", number: "12345678", holderName: "홍길동", extra: true },
        ]
      ) {
        const refused = await cancel(app, user, { paymentId, reason: "가상계좌 환불", refundAccount: bad });
        assert.equal(refused.status, 400, JSON.stringify(bad));
        assert.equal(refused.body.error.code, "invalid_refund_account");
      }
      assert.equal(cancelCalls(app, paymentId), 0);

      const account = { bank: "SHINHAN", number: "110123456789", holderName: "홍길동" };
      const { status, body } = await cancel(app, user, {
        paymentId,
        reason: "가상계좌 환불",
        refundAccount: account,
      });
      assert.equal(status, 200);
      assert.equal(body.status, "CANCELLED");
      const refund = app.sandbox.refunds().find((r) => r.paymentId === paymentId);
      assert.deepEqual(refund?.refundAccount, account);
      const [row] = await app.deps
        .sql`select refund_account_masked from public.payment_cancellations where payment_id = ${paymentId}`;
      assert.deepEqual(row?.refund_account_masked, {
        bank: "SHINHAN",
        numberMasked: "****6789",
        holderName: "홍**",
      });
    },
  );

  await t.step("someone else's payment → 404 like a missing one", async () => {
    const { paymentId } = await app.paidPayment();
    const stranger = await app.createUser();
    const foreign = await cancel(app, stranger, { paymentId, reason: "남의 결제" });
    const missing = await cancel(app, stranger, {
      paymentId: "pay_00000000000000000000000000000000",
      reason: "없음",
    });
    assert.equal(foreign.status, 404);
    assert.deepEqual(foreign.body, missing.body);
    assert.equal(cancelCalls(app, paymentId), 0);
  });

  await t.step("the same Idempotency-Key twice → one refund, the same answer", async () => {
    const { user, paymentId } = await app.paidPayment();
    const key = `cancel-${crypto.randomUUID()}`;
    const first = await cancel(app, user, { paymentId, amount: 4000, reason: "중복 요청" }, key);
    const second = await cancel(app, user, { paymentId, amount: 4000, reason: "중복 요청" }, key);
    assert.equal(first.status, 200);
    assert.deepEqual(second.body, first.body);
    assert.equal(second.headers.get("idempotent-replayed"), "true");
    const otherBody = await cancel(app, user, { paymentId, amount: 1000, reason: "중복 요청" }, key);
    assert.equal(otherBody.status, 422);
    assert.equal(refundedAtPortOne(app, paymentId), 4000);
  });

  await t.step(
    "a PortOne timeout that refunded anyway, then the client's retry → exactly one refund",
    async () => {
      const { user, paymentId } = await app.paidPayment();
      const key = `cancel-${crypto.randomUUID()}`;
      app.sandbox.injectFault({
        operation: "cancelPayment",
        mode: "hang",
        times: 1,
        applyBeforeFailure: true,
      });
      const timedOut = await cancel(app, user, { paymentId, amount: 6000, reason: "타임아웃" }, key);
      assert.equal(timedOut.status, 503);
      assert.equal(timedOut.body.error.code, "portone_unavailable");
      assert.equal(refundedAtPortOne(app, paymentId), 6000, "the sandbox did refund");
      assert.equal((await stored(app, paymentId)).cancel_reserved_amount, 6000, "the reservation is kept");

      const blocked = await cancel(app, user, { paymentId, amount: 1000, reason: "다른 요청" });
      assert.equal(blocked.status, 409);
      assert.equal(blocked.body.error.code, "cancel_in_progress");

      const retried = await cancel(app, user, { paymentId, amount: 6000, reason: "타임아웃" }, key);
      assert.equal(retried.status, 200);
      assert.equal(retried.body.cancellation.status, "SUCCEEDED");
      assert.equal(refundedAtPortOne(app, paymentId), 6000, "the retry did not refund again");
      assert.deepEqual(await stored(app, paymentId), {
        status: "PARTIAL_CANCELLED",
        cancelled_amount: 6000,
        cancellable_amount: 4000,
        cancel_reserved_amount: 0,
        order_status: "partial_cancelled",
        succeeded: 1,
      });
      const keys = app.sandbox.requests().filter((r) =>
        r.operation === "cancelPayment" && r.path.includes(paymentId)
      )
        .map((r) => r.idempotencyKey);
      assert.equal(keys.length, 2);
      assert.equal(keys[0], keys[1], "both calls carried the same PortOne Idempotency-Key");
    },
  );

  for (const performed of [false, true]) {
    await t.step(
      `an abandoned cancellation (PortOne ${
        performed ? "refunded" : "never saw it"
      }) is finished by the next cancel, once`,
      async () => {
        const { user, paymentId } = await app.paidPayment();
        app.sandbox.injectFault({
          operation: "cancelPayment",
          mode: "reset",
          times: 1,
          applyBeforeFailure: performed,
        });
        const lost = await cancel(app, user, { paymentId, amount: 3000, reason: "응답 유실" });
        assert.equal(lost.status, 503);
        assert.equal(refundedAtPortOne(app, paymentId), performed ? 3000 : 0);

        const tooSoon = await cancel(app, user, { paymentId, amount: 2000, reason: "다음 요청" });
        assert.equal(tooSoon.body.error.code, "cancel_in_progress");

        // nobody retries the lost request; once it is clearly abandoned, the next cancel finishes it first
        await app.deps.sql`
          update public.payment_cancellations set requested_at = now() - interval '10 minutes'
          where payment_id = ${paymentId} and status = 'REQUESTED'`;
        const next = await cancel(app, user, { paymentId, amount: 2000, reason: "다음 요청" });
        assert.equal(next.status, 200, JSON.stringify(next.body));
        assert.equal(next.body.cancelledAmount, 5000);
        assert.equal(refundedAtPortOne(app, paymentId), 5000, "the lost 3000 was refunded exactly once");
        assert.deepEqual(await stored(app, paymentId), {
          status: "PARTIAL_CANCELLED",
          cancelled_amount: 5000,
          cancellable_amount: 5000,
          cancel_reserved_amount: 0,
          order_status: "partial_cancelled",
          succeeded: 2,
        });
      },
    );
  }

  await t.step(
    "PortOne's balance moved (currentCancellableAmount mismatch) → re-sync, 409, reservation released",
    async () => {
      const { user, paymentId } = await app.paidPayment();
      // a refund made in PortOne's console that we have not synced yet
      await app.deps.portone.cancelPayment({
        paymentId,
        amount: 1000,
        reason: "콘솔 환불",
        requester: "ADMIN",
        currentCancellableAmount: 10000,
        idempotencyKey: crypto.randomUUID(),
      });
      const { status, body } = await cancel(app, user, { paymentId, amount: 2000, reason: "고객 요청" });
      assert.equal(status, 409);
      assert.equal(body.error.code, "payment_out_of_sync");
      assert.deepEqual(await stored(app, paymentId), {
        status: "PARTIAL_CANCELLED",
        cancelled_amount: 1000,
        cancellable_amount: 9000,
        cancel_reserved_amount: 0,
        order_status: "partial_cancelled",
        succeeded: 1,
      });
      const retry = await cancel(app, user, { paymentId, amount: 2000, reason: "고객 요청" });
      assert.equal(retry.status, 200);
      assert.equal(retry.body.cancelledAmount, 3000);
    },
  );

  await t.step("an asynchronous cancel stays REQUESTED until PortOne's webhook settles it", async () => {
    app.serveWebhook();
    try {
      const { user, paymentId } = await app.paidPayment({ asyncCancel: true });
      const { status, body } = await cancel(app, user, { paymentId, amount: 3000, reason: "비동기 취소" });
      assert.equal(status, 200);
      assert.equal(body.cancellation.status, "REQUESTED");
      assert.equal(body.status, "PAID");
      assert.equal((await stored(app, paymentId)).cancel_reserved_amount, 3000);
      const second = await cancel(app, user, { paymentId, amount: 1000, reason: "또 취소" });
      assert.equal(second.body.error.code, "cancel_in_progress");

      app.sandbox.completeCancellation({ paymentId, outcome: "SUCCEEDED" });
      await app.sandbox.idle();
      assert.deepEqual(await stored(app, paymentId), {
        status: "PARTIAL_CANCELLED",
        cancelled_amount: 3000,
        cancellable_amount: 7000,
        cancel_reserved_amount: 0,
        order_status: "partial_cancelled",
        succeeded: 1,
      });
      const [row] = await app.deps
        .sql`select status from public.payment_cancellations where id = ${body.cancellation.id}`;
      assert.equal(row?.status, "SUCCEEDED");
    } finally {
      app.sandbox.setWebhookUrl(undefined);
    }
  });

  await t.step("a payment that is not paid → 409 payment_not_cancellable", async () => {
    const user = await app.createUser();
    const product = await app.createProduct({ price: 1000 });
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
    const { status, body } = await cancel(app, user, { paymentId: checkout.paymentId, reason: "미결제" });
    assert.equal(status, 409);
    assert.equal(body.error.code, "payment_not_cancellable");
  });

  await t.step(
    "50 concurrent partial cancels asking twice the balance: refunds ≤ paid and equal to the DB",
    async () => {
      const { user, paymentId } = await app.paidPayment();
      const isolates = [0, 1, 2, 3].map(() => app.isolate());
      try {
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            isolates[i % 4]!.functions.cancel.fetch(
              new Request("http://127.0.0.1/functions/v1/cancel", {
                method: "POST",
                headers: {
                  authorization: `Bearer ${user.token}`,
                  "content-type": "application/json",
                  "idempotency-key": `storm-${i}-${crypto.randomUUID()}`,
                },
                body: JSON.stringify({ paymentId, amount: 400, reason: `동시 취소 ${i}` }),
              }),
            ).then(async (r) => ({ status: r.status, body: await r.json() }))),
        );
        const statuses = new Set(results.map((r) => r.status));
        assert.ok([...statuses].every((s) => s === 200 || s === 409), JSON.stringify([...statuses]));
        const succeeded = results.filter((r) => r.status === 200).length;
        assert.ok(succeeded >= 1);
        const refunded = refundedAtPortOne(app, paymentId);
        assert.ok(refunded <= 10000);
        assert.equal(refunded, succeeded * 400);
        const row = await stored(app, paymentId);
        assert.equal(row.cancelled_amount, refunded);
        assert.equal(row.succeeded, succeeded);
        assert.equal(row.cancel_reserved_amount, 0);
      } finally {
        await Promise.all(isolates.map((i) => i.close()));
      }
    },
  );
});

Deno.test("cancel permissions with the default policy (customers denied)", async (t) => {
  await using app = await startTestApp();

  await t.step("the owner gets 403 and PortOne is never called", async () => {
    const { user, paymentId } = await app.paidPayment();
    const { status, body } = await cancel(app, user, { paymentId, reason: "고객 취소" });
    assert.equal(status, 403);
    assert.equal(body.error.code, "forbidden");
    assert.equal(cancelCalls(app, paymentId), 0);
  });

  await t.step("an admin may cancel anyone's payment, recorded as ADMIN", async () => {
    const { paymentId } = await app.paidPayment();
    const admin = await app.createUser({ admin: true });
    const { status, body } = await cancel(app, admin, { paymentId, amount: 2500, reason: "관리자 취소" });
    assert.equal(status, 200);
    assert.equal(body.status, "PARTIAL_CANCELLED");
    const [row] = await app.deps
      .sql`select requester, requested_by from public.payment_cancellations where payment_id = ${paymentId}`;
    assert.deepEqual({ ...row }, { requester: "ADMIN", requested_by: admin.id });
    const portone = app.sandbox.requests().find((r) =>
      r.operation === "cancelPayment" && r.path.includes(paymentId)
    );
    assert.equal(portone?.status, 200);
  });
});

Deno.test("cancel: bad input → 4xx with a stable code, no writes, no PortOne call", async (t) => {
  await using app = await startTestApp({ env: { CUSTOMER_CANCEL_POLICY: "allow" } });
  const { user, paymentId } = await app.paidPayment();
  const footprint = async () => {
    const [row] = await app.deps.sql`
      select (select count(*)::int from public.payment_cancellations where payment_id = ${paymentId}) as cancellations,
             (select count(*)::int from public.idempotency_keys where user_id = ${user.id}) as keys,
             (select cancel_reserved_amount from public.payments where id = ${paymentId}) as reserved`;
    return { ...row, calls: cancelCalls(app, paymentId) };
  };
  const cases: [string, Record<string, unknown> | string, Record<string, string>, number, string][] = [
    ["no Idempotency-Key", { paymentId, reason: "x" }, {}, 400, "invalid_request"],
    ["no reason", { paymentId }, { "idempotency-key": "k-0123456789" }, 400, "invalid_request"],
    [
      "a blank reason",
      { paymentId, reason: "   " },
      { "idempotency-key": "k-0123456790" },
      400,
      "invalid_request",
    ],
    [
      "a reason over 200 characters",
      { paymentId, reason: "가".repeat(201) },
      { "idempotency-key": "k-0123456791" },
      400,
      "invalid_request",
    ],
    [
      "a zero amount",
      { paymentId, amount: 0, reason: "x" },
      { "idempotency-key": "k-0123456792" },
      400,
      "invalid_request",
    ],
    [
      "a negative amount",
      { paymentId, amount: -100, reason: "x" },
      { "idempotency-key": "k-0123456793" },
      400,
      "invalid_request",
    ],
    [
      "a float amount",
      { paymentId, amount: 100.5, reason: "x" },
      { "idempotency-key": "k-0123456794" },
      400,
      "invalid_request",
    ],
    [
      "an overflowing amount",
      `{"paymentId":"${paymentId}","amount":1e400,"reason":"x"}`,
      { "idempotency-key": "k-0123456795" },
      400,
      "invalid_request",
    ],
    [
      "an amount as a string",
      { paymentId, amount: "100", reason: "x" },
      { "idempotency-key": "k-0123456796" },
      400,
      "invalid_request",
    ],
    [
      "a negative tax-free amount",
      { paymentId, taxFreeAmount: -1, reason: "x" },
      { "idempotency-key": "k-0123456797" },
      400,
      "invalid_request",
    ],
    [
      "an extra field",
      { paymentId, reason: "x", currentCancellableAmount: 1 },
      { "idempotency-key": "k-0123456798" },
      400,
      "invalid_request",
    ],
    [
      "SQL in the paymentId",
      { paymentId: "'; delete from payments; --", reason: "x" },
      { "idempotency-key": "k-0123456799" },
      400,
      "invalid_request",
    ],
    ["invalid JSON", "{", { "idempotency-key": "k-0123456800" }, 400, "invalid_json"],
  ];
  for (const [name, body, headers, status, code] of cases) {
    await t.step(`${name} → ${status} ${code}`, async () => {
      const before = await footprint();
      const result = await app.call("cancel", {
        user,
        headers,
        ...(typeof body === "string" ? { rawBody: body } : { body }),
      });
      assert.equal(result.status, status, JSON.stringify(result.body));
      assert.equal(result.body.error.code, code);
      assert.deepEqual(await footprint(), before);
    });
  }
});
