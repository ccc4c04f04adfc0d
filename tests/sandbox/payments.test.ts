import assert from "node:assert/strict";
import { PortOne } from "../support/deps.ts";
import { type Sandbox, startSandbox } from "./sandbox.ts";
import { rejectsWith } from "./test-support.ts";

const FIXED = new Date("2026-03-01T09:00:00.000Z");

function client(sandbox: Sandbox, secret = sandbox.apiSecret) {
  return PortOne.PaymentClient({ secret, baseUrl: sandbox.url });
}

const card = (paymentId: string, totalAmount = 10_000) => ({
  paymentId,
  channel: "TEST" as const,
  method: "CARD" as const,
  orderName: "샌드박스 주문",
  totalAmount,
  currency: "KRW",
  customerId: "customer-1",
});

Deno.test("getPayment() returns a PAID card payment with the SDK's Payment shape", async () => {
  await using sandbox = await startSandbox({ clock: () => FIXED });
  sandbox.pay({ ...card("pay-1", 11_000), taxFreeAmount: 1_000 });
  const payment = await client(sandbox).getPayment({ paymentId: "pay-1" });
  assert.equal(payment.status, "PAID");
  if (payment.status !== "PAID") return;
  assert.equal(payment.id, "pay-1");
  assert.equal(payment.storeId, sandbox.storeId);
  assert.equal(payment.merchantId, sandbox.merchantId);
  assert.equal(payment.version, "V2");
  assert.equal(payment.channel.type, "TEST");
  assert.equal(payment.channel.key, sandbox.channels.test.key);
  assert.deepEqual(payment.amount, {
    total: 11_000,
    taxFree: 1_000,
    vat: 909,
    supply: 9_091,
    discount: 0,
    paid: 11_000,
    cancelled: 0,
    cancelledTaxFree: 0,
  });
  assert.equal(payment.currency, "KRW");
  assert.equal(payment.orderName, "샌드박스 주문");
  assert.equal(payment.customer.id, "customer-1");
  assert.deepEqual(payment.disputes, []);
  assert.equal(payment.paidAt, FIXED.toISOString());
  assert.equal(payment.statusChangedAt, FIXED.toISOString());
  assert.equal(payment.requestedAt, FIXED.toISOString());
  assert.ok(payment.transactionId.length > 0);
  assert.equal(payment.method?.type, "PaymentMethodCard");
  if (payment.method?.type === "PaymentMethodCard") {
    assert.match(payment.method.card?.number ?? "", /^\d{6}\*+\d{4}$/);
  }
});

Deno.test("getPayment() answers EasyPay method and LIVE channel", async () => {
  await using sandbox = await startSandbox();
  sandbox.pay({ ...card("easy-1"), method: "EASY_PAY", channel: "LIVE", easyPayProvider: "NAVERPAY" });
  const payment = await client(sandbox).getPayment({ paymentId: "easy-1" });
  assert.equal(payment.status, "PAID");
  if (payment.status !== "PAID") return;
  assert.equal(payment.channel.type, "LIVE");
  assert.deepEqual(payment.method, { type: "PaymentMethodEasyPay", provider: "NAVERPAY" });
});

Deno.test("the API enforces authorization and store scoping", async (t) => {
  await using sandbox = await startSandbox({ otherStoreIds: ["store-other"] });
  sandbox.pay({ ...card("scoped-1"), storeId: "store-other" });
  const sdk = client(sandbox);

  await t.step("a wrong secret → 401 UNAUTHORIZED", async () => {
    await rejectsWith(
      client(sandbox, "wrong").getPayment({ paymentId: "scoped-1" }),
      PortOne.Payment.GetPaymentError,
      "UNAUTHORIZED",
    );
    assert.equal(sandbox.requests().at(-1)?.status, 401);
  });
  await t.step("a missing payment → 404 PAYMENT_NOT_FOUND", async () => {
    await rejectsWith(
      sdk.getPayment({ paymentId: "nope" }),
      PortOne.Payment.GetPaymentError,
      "PAYMENT_NOT_FOUND",
    );
  });
  await t.step("another store's payment is NOT_FOUND in the main store", async () => {
    await rejectsWith(
      sdk.getPayment({ paymentId: "scoped-1" }),
      PortOne.Payment.GetPaymentError,
      "PAYMENT_NOT_FOUND",
    );
  });
  await t.step("with its storeId the payment is found", async () => {
    const payment = await sdk.getPayment({ paymentId: "scoped-1", storeId: "store-other" });
    assert.equal(payment.status, "PAID");
  });
  await t.step("an unknown storeId → 403 FORBIDDEN", async () => {
    await rejectsWith(
      sdk.getPayment({ paymentId: "scoped-1", storeId: "store-stranger" }),
      PortOne.Payment.GetPaymentError,
      "FORBIDDEN",
    );
    await rejectsWith(
      sdk.cancelPayment({ paymentId: "scoped-1", storeId: "store-stranger", reason: "x" }),
      PortOne.Payment.CancelPaymentError,
      "FORBIDDEN",
    );
  });
});

Deno.test("preRegisterPayment() returns {} and the payment window enforces it", async (t) => {
  await using sandbox = await startSandbox();
  const sdk = client(sandbox);

  await t.step("pre-register answers an empty object", async () => {
    assert.deepEqual(
      await sdk.preRegisterPayment({
        paymentId: "pre-1",
        totalAmount: 5_000,
        currency: "KRW",
        taxFreeAmount: 0,
      }),
      {},
    );
  });
  await t.step("a different amount ends FAILED with a reason", () => {
    const payment = sandbox.pay(card("pre-1", 4_000));
    assert.equal(payment.status, "FAILED");
    if (payment.status !== "FAILED") return;
    assert.match(payment.failure.reason ?? "", /totalAmount 4000/);
    assert.equal(sandbox.getPayment("pre-1")?.status, "FAILED");
  });
  await t.step("a different currency ends FAILED", () => {
    const payment = sandbox.pay({ ...card("pre-1", 5_000), currency: "USD" });
    assert.equal(payment.status, "FAILED");
  });
  await t.step("the matching amount is PAID", () => {
    assert.equal(sandbox.pay(card("pre-1", 5_000)).status, "PAID");
  });
  await t.step("pre-register on a PAID payment → 409 ALREADY_PAID", async () => {
    await rejectsWith(
      sdk.preRegisterPayment({ paymentId: "pre-1", totalAmount: 5_000, currency: "KRW" }),
      PortOne.Payment.PreRegisterPaymentError,
      "ALREADY_PAID",
    );
  });
});

Deno.test("cancelPayment() books partial cancels until the payment is CANCELLED", async (t) => {
  let now = new Date("2026-03-01T00:00:00.000Z");
  await using sandbox = await startSandbox({ clock: () => now });
  const sdk = client(sandbox);
  sandbox.pay({ ...card("cancel-1", 10_000), taxFreeAmount: 2_000 });

  await t.step("partial cancel → PARTIAL_CANCELLED with one SUCCEEDED cancellation", async () => {
    now = new Date("2026-03-01T01:00:00.000Z");
    const { cancellation } = await sdk.cancelPayment({
      paymentId: "cancel-1",
      amount: 3_000,
      reason: "부분 환불",
      currentCancellableAmount: 10_000,
    });
    assert.equal(cancellation.status, "SUCCEEDED");
    if (cancellation.status !== "SUCCEEDED") return;
    assert.equal(cancellation.totalAmount, 3_000);
    assert.equal(cancellation.taxFreeAmount, 0);
    assert.equal(cancellation.vatAmount, 272);
    assert.equal(cancellation.reason, "부분 환불");
    assert.equal(cancellation.cancelledAt, now.toISOString());
    const payment = await sdk.getPayment({ paymentId: "cancel-1" });
    assert.equal(payment.status, "PARTIAL_CANCELLED");
    if (payment.status !== "PARTIAL_CANCELLED") return;
    assert.equal(payment.amount.cancelled, 3_000);
    assert.equal(payment.cancellations.length, 1);
    assert.equal(payment.cancelledAt, now.toISOString());
    assert.equal(payment.statusChangedAt, now.toISOString());
  });
  await t.step("a stale currentCancellableAmount → 409 CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN", async () => {
    await rejectsWith(
      sdk.cancelPayment({
        paymentId: "cancel-1",
        amount: 1_000,
        reason: "x",
        currentCancellableAmount: 10_000,
      }),
      PortOne.Payment.CancelPaymentError,
      "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN",
    );
    assert.equal(sandbox.refunds().length, 1, "a refused cancel refunds nothing");
  });
  await t.step("more than the balance → 409 CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT", async () => {
    await rejectsWith(
      sdk.cancelPayment({ paymentId: "cancel-1", amount: 7_001, reason: "x" }),
      PortOne.Payment.CancelPaymentError,
      "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
    );
  });
  await t.step(
    "too much tax-free → 409 CANCEL_TAX_FREE_AMOUNT_EXCEEDS_CANCELLABLE_TAX_FREE_AMOUNT",
    async () => {
      await rejectsWith(
        sdk.cancelPayment({ paymentId: "cancel-1", amount: 3_000, taxFreeAmount: 2_500, reason: "x" }),
        PortOne.Payment.CancelPaymentError,
        "CANCEL_TAX_FREE_AMOUNT_EXCEEDS_CANCELLABLE_TAX_FREE_AMOUNT",
      );
    },
  );
  await t.step("no reason → 400 INVALID_REQUEST", async () => {
    await rejectsWith(
      sdk.cancelPayment({ paymentId: "cancel-1" } as Parameters<typeof sdk.cancelPayment>[0]),
      PortOne.Payment.CancelPaymentError,
      "INVALID_REQUEST",
    );
  });
  await t.step("omitting amount cancels the remainder → CANCELLED", async () => {
    const { cancellation } = await sdk.cancelPayment({
      paymentId: "cancel-1",
      reason: "전액 환불",
      currentCancellableAmount: 7_000,
    });
    assert.equal(cancellation.status, "SUCCEEDED");
    if (cancellation.status !== "SUCCEEDED") return;
    assert.equal(cancellation.totalAmount, 7_000);
    assert.equal(cancellation.taxFreeAmount, 2_000);
    const payment = await sdk.getPayment({ paymentId: "cancel-1" });
    assert.equal(payment.status, "CANCELLED");
    if (payment.status !== "CANCELLED") return;
    assert.equal(payment.amount.cancelled, 10_000);
    assert.equal(payment.amount.cancelledTaxFree, 2_000);
    assert.equal(payment.cancellations.length, 2);
    assert.deepEqual(sandbox.refunds().map((refund) => refund.amount), [3_000, 7_000]);
  });
  await t.step("a cancelled payment → 409 PAYMENT_ALREADY_CANCELLED", async () => {
    await rejectsWith(
      sdk.cancelPayment({ paymentId: "cancel-1", reason: "again" }),
      PortOne.Payment.CancelPaymentError,
      "PAYMENT_ALREADY_CANCELLED",
    );
  });
  await t.step("a missing payment → 404 PAYMENT_NOT_FOUND", async () => {
    await rejectsWith(
      sdk.cancelPayment({ paymentId: "missing", reason: "x" }),
      PortOne.Payment.CancelPaymentError,
      "PAYMENT_NOT_FOUND",
    );
  });
});

Deno.test("virtual accounts: issue, deposit, and refunds that need a refund account", async (t) => {
  await using sandbox = await startSandbox();
  const sdk = client(sandbox);
  const issued = sandbox.pay({ ...card("va-1", 30_000), method: "VIRTUAL_ACCOUNT" });

  await t.step("issue → VIRTUAL_ACCOUNT_ISSUED with the account details", async () => {
    assert.equal(issued.status, "VIRTUAL_ACCOUNT_ISSUED");
    const payment = await sdk.getPayment({ paymentId: "va-1" });
    assert.equal(payment.status, "VIRTUAL_ACCOUNT_ISSUED");
    if (
      payment.status !== "VIRTUAL_ACCOUNT_ISSUED" || payment.method?.type !== "PaymentMethodVirtualAccount"
    ) {
      return assert.fail("expected a virtual account method");
    }
    assert.equal(payment.method.bank, "SHINHAN");
    assert.match(payment.method.accountNumber, /^\d+$/);
    assert.ok(payment.method.remitteeName);
    assert.ok(payment.method.expiredAt && payment.method.issuedAt);
    assert.equal(payment.method.accountType, "NORMAL");
  });
  await t.step("cancel before deposit → 409 PAYMENT_NOT_PAID", async () => {
    await rejectsWith(
      sdk.cancelPayment({ paymentId: "va-1", reason: "x" }),
      PortOne.Payment.CancelPaymentError,
      "PAYMENT_NOT_PAID",
    );
  });
  await t.step("deposit → PAID with paidAt", async () => {
    sandbox.depositVirtualAccount("va-1");
    const payment = await sdk.getPayment({ paymentId: "va-1" });
    assert.equal(payment.status, "PAID");
    if (payment.status === "PAID") assert.ok(payment.paidAt);
  });
  await t.step("cancel without refundAccount → 400 INVALID_REQUEST", async () => {
    await rejectsWith(
      sdk.cancelPayment({ paymentId: "va-1", reason: "환불" }),
      PortOne.Payment.CancelPaymentError,
      "INVALID_REQUEST",
    );
  });
  await t.step("a bank code outside the Bank enum → 400 INVALID_REQUEST", async () => {
    await rejectsWith(
      sdk.cancelPayment({
        paymentId: "va-1",
        reason: "환불",
        refundAccount: { bank: "NOT_A_BANK", number: "11012345678", holderName: "홍길동" },
      }),
      PortOne.Payment.CancelPaymentError,
      "INVALID_REQUEST",
    );
  });
  await t.step("with a refund account the refund is recorded with it", async () => {
    const { cancellation } = await sdk.cancelPayment({
      paymentId: "va-1",
      reason: "환불",
      amount: 10_000,
      refundAccount: { bank: "KOOKMIN", number: "11012345678", holderName: "홍길동" },
    });
    assert.equal(cancellation.status, "SUCCEEDED");
    assert.deepEqual(sandbox.refunds()[0]?.refundAccount, {
      bank: "KOOKMIN",
      number: "11012345678",
      holderName: "홍길동",
    });
    assert.equal(sandbox.getPayment("va-1")?.status, "PARTIAL_CANCELLED");
  });
});

Deno.test("async cancels answer REQUESTED until the PG completes them", async () => {
  await using sandbox = await startSandbox();
  const sdk = client(sandbox);
  sandbox.pay({ ...card("async-1", 8_000), asyncCancel: true });
  const { cancellation } = await sdk.cancelPayment({ paymentId: "async-1", reason: "비동기" });
  assert.equal(cancellation.status, "REQUESTED");
  assert.equal(sandbox.getPayment("async-1")?.status, "PAID");
  assert.equal(sandbox.refunds().length, 0);
  await rejectsWith(
    sdk.cancelPayment({ paymentId: "async-1", reason: "again", amount: 1 }),
    PortOne.Payment.CancelPaymentError,
    "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT",
  );
  const done = sandbox.completeCancellation({ paymentId: "async-1", outcome: "SUCCEEDED" });
  assert.equal(done?.status, "SUCCEEDED");
  const payment = await sdk.getPayment({ paymentId: "async-1" });
  assert.equal(payment.status, "CANCELLED");
  assert.equal(sandbox.refunds()[0]?.amount, 8_000);
});

Deno.test("a failed async cancel leaves the payment PAID", async () => {
  await using sandbox = await startSandbox();
  sandbox.pay({ ...card("async-2", 8_000), asyncCancel: true });
  await client(sandbox).cancelPayment({ paymentId: "async-2", reason: "x", amount: 2_000 });
  const failed = sandbox.completeCancellation({ paymentId: "async-2", outcome: "FAILED" });
  assert.equal(failed?.status, "FAILED");
  const payment = sandbox.getPayment("async-2");
  assert.equal(payment?.status, "PAID");
  if (payment?.status === "PAID") assert.equal(payment.amount.cancelled, 0);
});

Deno.test("PAY_PENDING payments settle through pay or fail", async () => {
  await using sandbox = await startSandbox();
  const sdk = client(sandbox);
  sandbox.openPaymentWindow(card("pending-1"));
  assert.equal((await sdk.getPayment({ paymentId: "pending-1" })).status, "READY");
  sandbox.setPayPending("pending-1");
  assert.equal((await sdk.getPayment({ paymentId: "pending-1" })).status, "PAY_PENDING");
  sandbox.pay(card("pending-1"));
  assert.equal((await sdk.getPayment({ paymentId: "pending-1" })).status, "PAID");

  sandbox.setPayPending(card("pending-2"));
  sandbox.failPayment("pending-2", "PG 거절");
  const failed = await sdk.getPayment({ paymentId: "pending-2" });
  assert.equal(failed.status, "FAILED");
  if (failed.status === "FAILED") assert.equal(failed.failure.reason, "PG 거절");
});

Deno.test("Idempotency-Key replays, refuses in-flight duplicates and mismatched reuse", async (t) => {
  let now = new Date("2026-03-01T00:00:00.000Z");
  await using sandbox = await startSandbox({ clock: () => now });
  const cancel = (key: string, body: Record<string, unknown>, paymentId = "idem-1") =>
    fetch(`${sandbox.url}/payments/${paymentId}/cancel`, {
      method: "POST",
      headers: { authorization: `PortOne ${sandbox.apiSecret}`, "idempotency-key": `"${key}"` },
      body: JSON.stringify(body),
    });
  sandbox.pay(card("idem-1", 10_000));

  await t.step("a completed key replays the stored answer without cancelling twice", async () => {
    const first = await cancel("key-0000000000000001", { amount: 1_000, reason: "r" });
    const second = await cancel("key-0000000000000001", { amount: 1_000, reason: "r" });
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.deepEqual(await second.json(), await first.json());
    assert.equal(sandbox.refunds().length, 1);
    const log = sandbox.requests().filter((entry) => entry.idempotencyKey === "key-0000000000000001");
    assert.deepEqual(log.map((entry) => entry.replayed), [false, true]);
  });
  await t.step("a key still in flight → 409 IDEMPOTENCY_OUTSTANDING_REQUEST", async () => {
    sandbox.injectFault({ operation: "cancelPayment", mode: "latency", latencyMs: 300, times: 1 });
    const slow = cancel("key-0000000000000002", { amount: 1_000, reason: "r" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const duplicate = await cancel("key-0000000000000002", { amount: 1_000, reason: "r" });
    assert.equal(duplicate.status, 409);
    assert.equal((await duplicate.json()).type, "IDEMPOTENCY_OUTSTANDING_REQUEST");
    assert.equal((await slow).status, 200);
    assert.equal(sandbox.refunds().length, 2);
  });
  await t.step("the same key with another body → 400 INVALID_REQUEST", async () => {
    const reused = await cancel("key-0000000000000001", { amount: 2_000, reason: "r" });
    assert.equal(reused.status, 400);
    assert.equal((await reused.json()).type, "INVALID_REQUEST");
    assert.equal(sandbox.refunds().length, 2);
  });
  await t.step("a bare (unquoted) key works the same", async () => {
    const headers = {
      authorization: `PortOne ${sandbox.apiSecret}`,
      "idempotency-key": "key-0000000000000001",
    };
    const replay = await fetch(`${sandbox.url}/payments/idem-1/cancel`, {
      method: "POST",
      headers,
      body: JSON.stringify({ amount: 1_000, reason: "r" }),
    });
    await replay.body?.cancel();
    assert.equal(replay.status, 200);
    assert.equal(sandbox.refunds().length, 2);
  });
  await t.step("a refund whose answer was lost replays on retry with the same key", async () => {
    sandbox.injectFault({ operation: "cancelPayment", mode: "reset", times: 1, applyBeforeFailure: true });
    await assert.rejects(cancel("key-0000000000000003", { amount: 500, reason: "lost" }), TypeError);
    assert.equal(sandbox.refunds().length, 3, "the refund happened although the response was lost");
    const retry = await cancel("key-0000000000000003", { amount: 500, reason: "lost" });
    assert.equal(retry.status, 200);
    assert.equal((await retry.json()).cancellation.totalAmount, 500);
    assert.equal(sandbox.refunds().length, 3);
  });
  await t.step("the key expires after 3 hours of sandbox time", async () => {
    now = new Date(now.getTime() + 3 * 3600_000 + 1);
    const fresh = await cancel("key-0000000000000001", { amount: 2_000, reason: "r" });
    assert.equal(fresh.status, 200);
    assert.equal((await fresh.json()).cancellation.totalAmount, 2_000);
    assert.equal(sandbox.refunds().length, 4);
  });
});
