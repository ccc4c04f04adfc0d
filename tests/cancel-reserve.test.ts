/**
 * The reservation step of `cancel` answers every refusal with the same status, code, message and details,
 * in the same order of precedence, whether a request is new or a retry with the same Idempotency-Key whose
 * stored reply has expired (the retry then meets the cancellation row itself, not the stored reply).
 */
import assert from "node:assert/strict";
import { startTestApp, type TestApp, type TestUser } from "./support/app.ts";

function cancel(
  app: TestApp,
  user: TestUser,
  body: Record<string, unknown>,
  key = `c-${crypto.randomUUID()}`,
) {
  return app.call("cancel", { user, body, headers: { "idempotency-key": key } });
}

function cancelCalls(app: TestApp, paymentId: string): number {
  return app.sandbox.requests().filter((r) => r.operation === "cancelPayment" && r.path.includes(paymentId))
    .length;
}

/** Our stored reply to that key runs out (24 h later): the next retry reaches the cancellation row. */
async function expireReply(app: TestApp, user: TestUser, key: string): Promise<void> {
  const deleted = await app.deps.sql`
    delete from public.idempotency_keys where user_id = ${user.id} and key = ${key} returning 1`;
  assert.equal(deleted.length, 1);
}

async function footprint(app: TestApp, paymentId: string) {
  const [row] = await app.deps.sql`
    select p.cancel_reserved_amount as reserved, p.cancelled_amount as cancelled,
           (select count(*)::int from public.payment_cancellations c where c.payment_id = p.id) as cancellations,
           (select count(*)::int from public.payment_events e where e.payment_id = p.id) as events
    from public.payments p where p.id = ${paymentId}`;
  return { ...row, calls: cancelCalls(app, paymentId) };
}

Deno.test("cancel's reservation refuses with the same answers, in the same order", async (t) => {
  await using app = await startTestApp();
  const owner = await app.createUser();
  const admin = await app.createUser({ admin: true });

  const refused = async (
    paymentId: string,
    user: TestUser,
    body: Record<string, unknown>,
    expected: { status: number; error: Record<string, unknown> },
    key?: string,
  ) => {
    const before = await footprint(app, paymentId);
    const result = await cancel(app, user, { paymentId, ...body }, key);
    assert.deepEqual({ status: result.status, error: result.body.error }, expected);
    assert.deepEqual(await footprint(app, paymentId), before, "a refusal writes nothing");
  };

  await t.step("customers are forbidden by the default policy, before any other check", async () => {
    const user = await app.createUser();
    const product = await app.createProduct({ price: 1000 });
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
    await refused(checkout.paymentId, user, { amount: 99999, reason: "x" }, {
      status: 403,
      error: { code: "forbidden", message: "Cancelling is not open to customers; ask the merchant" },
    });
  });

  await t.step("a payment that was never paid", async () => {
    const product = await app.createProduct({ price: 1000 });
    const order = await app.createOrder(owner, [{ productId: product, quantity: 1 }]);
    const { body: checkout } = await app.call("prepare", { user: owner, body: { orderId: order.id } });
    await refused(checkout.paymentId, admin, { amount: 99999, reason: "x" }, {
      status: 409,
      error: { code: "payment_not_cancellable", message: "A READY payment cannot be cancelled" },
    });
  });

  await t.step("amounts above what is left, the total before the tax-free part", async () => {
    const paymentId = (await app.paidPayment({ user: owner, taxFree: 3000 })).paymentId;
    await refused(paymentId, admin, { amount: 10001, taxFreeAmount: 9000, reason: "x" }, {
      status: 409,
      error: {
        code: "cancel_amount_exceeds_cancellable",
        message: "At most 10000 can be cancelled",
        cancellableAmount: 10000,
      },
    });
    await refused(paymentId, admin, { amount: 5000, taxFreeAmount: 4000, reason: "x" }, {
      status: 409,
      error: {
        code: "cancel_amount_exceeds_cancellable",
        message: "At most 3000 tax-free can be cancelled",
        field: "taxFreeAmount",
        cancellableTaxFreeAmount: 3000,
      },
    });
    await refused(paymentId, admin, { amount: 1000, taxFreeAmount: 2000, reason: "x" }, {
      status: 409,
      error: {
        code: "cancel_amount_exceeds_cancellable",
        message: "At most 1000 tax-free can be cancelled",
        field: "taxFreeAmount",
        cancellableTaxFreeAmount: 3000,
      },
    });
    const ok = await cancel(app, admin, { paymentId, amount: 4000, taxFreeAmount: 3000, reason: "x" });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    await refused(paymentId, admin, { amount: 6001, reason: "x" }, {
      status: 409,
      error: {
        code: "cancel_amount_exceeds_cancellable",
        message: "At most 6000 can be cancelled",
        cancellableAmount: 6000,
      },
    });
    await refused(paymentId, admin, { amount: 1000, taxFreeAmount: 1, reason: "x" }, {
      status: 409,
      error: {
        code: "cancel_amount_exceeds_cancellable",
        message: "At most 0 tax-free can be cancelled",
        field: "taxFreeAmount",
        cancellableTaxFreeAmount: 0,
      },
    });
  });

  await t.step("a virtual account needs a refund account, checked after the amounts", async () => {
    const paymentId = (await app.paidPayment({ user: owner, method: "VIRTUAL_ACCOUNT" })).paymentId;
    await refused(paymentId, admin, { amount: 10001, reason: "x" }, {
      status: 409,
      error: {
        code: "cancel_amount_exceeds_cancellable",
        message: "At most 10000 can be cancelled",
        cancellableAmount: 10000,
      },
    });
    await refused(paymentId, admin, { amount: 1000, reason: "x" }, {
      status: 400,
      error: {
        code: "refund_account_required",
        message: "A virtual-account payment is refunded to a bank account: send refundAccount",
      },
    });
    // a PG that refunds only with the holder's phone number
    await app.deps.sql`update public.payments set pg_provider = 'SMARTRO_V2' where id = ${paymentId}`;
    const account = { bank: "SHINHAN", number: "110123456789", holderName: "홍길동" };
    await refused(paymentId, admin, { amount: 1000, reason: "x", refundAccount: account }, {
      status: 400,
      error: {
        code: "invalid_refund_account",
        message: "This PG needs refundAccount.holderPhoneNumber",
        field: "refundAccount.holderPhoneNumber",
      },
    });
    const ok = await cancel(app, admin, {
      paymentId,
      amount: 1000,
      reason: "x",
      refundAccount: { ...account, holderPhoneNumber: "01012345678" },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const [row] = await app.deps.sql`
      select refund_account_masked from public.payment_cancellations where id = ${ok.body.cancellation.id}`;
    assert.deepEqual(row?.refund_account_masked, {
      bank: "SHINHAN",
      numberMasked: "****6789",
      holderName: "홍**",
    });
  });

  await t.step("a card payment ignores a refund account: none is sent or stored", async () => {
    const paymentId = (await app.paidPayment({ user: owner })).paymentId;
    const account = { bank: "SHINHAN", number: "110123456789", holderName: "홍길동" };
    const ok = await cancel(app, admin, { paymentId, amount: 1000, reason: "x", refundAccount: account });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const [row] = await app.deps.sql`
      select refund_account_masked, requester, requested_by, amount, tax_free_amount, current_cancellable_amount
      from public.payment_cancellations where id = ${ok.body.cancellation.id}`;
    assert.deepEqual({ ...row }, {
      refund_account_masked: null,
      requester: "ADMIN",
      requested_by: admin.id,
      amount: 1000,
      tax_free_amount: 0,
      current_cancellable_amount: 10000,
    });
    assert.equal(app.sandbox.refunds().find((r) => r.paymentId === paymentId)?.refundAccount, undefined);
  });

  await t.step("one cancellation in flight at a time, checked before the status and amounts", async () => {
    const paymentId = (await app.paidPayment({ user: owner, asyncCancel: true })).paymentId;
    const first = await cancel(app, admin, { paymentId, amount: 3000, reason: "비동기" });
    assert.equal(first.status, 200);
    assert.equal(first.body.cancellation.status, "REQUESTED");
    await refused(paymentId, admin, { amount: 99999, reason: "x" }, {
      status: 409,
      error: {
        code: "cancel_in_progress",
        message: "Another cancellation of this payment is in progress; retry shortly",
      },
    });
  });

  await t.step("a retry after the stored reply expired: the same answer from the row itself", async () => {
    const paymentId = (await app.paidPayment({ user: owner })).paymentId;
    const key = `c-${crypto.randomUUID()}`;
    const first = await cancel(app, admin, { paymentId, amount: 3000, reason: "첫 취소" }, key);
    assert.equal(first.status, 200);
    const second = await cancel(app, admin, { paymentId, amount: 2000, reason: "둘째 취소" });
    assert.equal(second.status, 200);
    await expireReply(app, admin, key);
    const retried = await cancel(app, admin, { paymentId, amount: 3000, reason: "첫 취소" }, key);
    assert.equal(retried.status, 200);
    // the cancellation as it was, the payment as it is now
    assert.deepEqual(retried.body, {
      paymentId,
      status: "PARTIAL_CANCELLED",
      cancellation: first.body.cancellation,
      cancelledAmount: 5000,
      cancellableAmount: 5000,
    });
    assert.equal(cancelCalls(app, paymentId), 2, "PortOne was not asked again");

    await expireReply(app, admin, key);
    await refused(paymentId, admin, { amount: 1000, reason: "첫 취소" }, {
      status: 422,
      error: {
        code: "idempotency_key_reused",
        message: "This Idempotency-Key was used for a different cancellation",
      },
    }, key);
  });

  await t.step("a refused cancellation answers its refusal again to a late retry", async () => {
    const paymentId = (await app.paidPayment({ user: owner })).paymentId;
    await app.deps.portone.cancelPayment({
      paymentId,
      amount: 1000,
      reason: "콘솔 환불",
      requester: "ADMIN",
      currentCancellableAmount: 10000,
      idempotencyKey: crypto.randomUUID(),
    });
    const key = `c-${crypto.randomUUID()}`;
    const expected = {
      status: 409,
      error: {
        code: "payment_out_of_sync",
        message: "The payment changed at PortOne; review it and retry with a new Idempotency-Key",
      },
    };
    const first = await cancel(app, admin, { paymentId, amount: 2000, reason: "거절" }, key);
    assert.deepEqual({ status: first.status, error: first.body.error }, expected);
    const calls = cancelCalls(app, paymentId);
    await expireReply(app, admin, key);
    await refused(paymentId, admin, { amount: 2000, reason: "거절" }, expected, key);
    assert.equal(cancelCalls(app, paymentId), calls, "PortOne was not asked again");
  });

  await t.step("a virtual-account retry of a request PortOne never saw needs the account again", async () => {
    const paymentId = (await app.paidPayment({ user: owner, method: "VIRTUAL_ACCOUNT" })).paymentId;
    const account = { bank: "SHINHAN", number: "110123456789", holderName: "홍길동" };
    const key = `c-${crypto.randomUUID()}`;
    app.sandbox.injectFault({ operation: "cancelPayment", mode: "reset", times: 1 });
    const lost = await cancel(
      app,
      admin,
      { paymentId, amount: 1000, reason: "유실", refundAccount: account },
      key,
    );
    assert.equal(lost.status, 503);
    await refused(paymentId, admin, { amount: 1000, reason: "유실" }, {
      status: 400,
      error: {
        code: "refund_account_required",
        message: "A virtual-account payment is refunded to a bank account: send refundAccount",
      },
    }, key);
    await expireReply(app, admin, key);
    const retried = await cancel(app, admin, {
      paymentId,
      amount: 1000,
      reason: "유실",
      refundAccount: account,
    }, key);
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    assert.equal(retried.body.cancellation.status, "SUCCEEDED");
    assert.equal(retried.body.cancelledAmount, 1000);
    const refunds = app.sandbox.refunds().filter((r) => r.paymentId === paymentId);
    assert.deepEqual(refunds.map((r) => [r.amount, r.refundAccount]), [[1000, account]]);
  });
});
