import assert from "node:assert/strict";
import { PortOne } from "../support/deps.ts";
import { startSandbox } from "./sandbox.ts";
import { rejectsWith } from "./test-support.ts";

Deno.test("billing keys: info, payment, decline and deletion through the SDK", async (t) => {
  await using sandbox = await startSandbox({ otherStoreIds: ["store-b"] });
  const sdk = PortOne.PaymentClient({ secret: sandbox.apiSecret, baseUrl: sandbox.url });
  const billingKey = sandbox.issueBillingKey({
    customerId: "cust-1",
    card: { number: "4330-1234-5678-9012" },
  });
  const declining = sandbox.issueBillingKey({ customerId: "cust-2", declinePayments: true });
  const order = { orderName: "정기결제", amount: { total: 9_900 }, currency: "KRW" } as const;

  await t.step("getBillingKeyInfo answers ISSUED with a masked card", async () => {
    assert.match(billingKey, /^billing-key-[0-9a-f-]{36}$/);
    const info = await sdk.billingKey.getBillingKeyInfo({ billingKey });
    assert.equal(info.status, "ISSUED");
    if (info.status !== "ISSUED") return;
    assert.equal(info.storeId, sandbox.storeId);
    assert.equal(info.customer.id, "cust-1");
    assert.equal(info.channels[0]?.key, sandbox.channels.test.key);
    const method = info.methods?.[0];
    assert.ok(method && method.type === "BillingKeyPaymentMethodCard");
    assert.equal(method.card?.number, "433012******9012");
  });
  await t.step(
    "payWithBillingKey answers {payment: {pgTxId, paidAt}} and stores a PAID payment",
    async () => {
      const { payment } = await sdk.payWithBillingKey({ paymentId: "sub-1", billingKey, ...order });
      assert.ok(payment.pgTxId && payment.paidAt);
      const stored = await sdk.getPayment({ paymentId: "sub-1" });
      assert.equal(stored.status, "PAID");
      if (stored.status === "PAID") assert.equal(stored.billingKey, billingKey);
    },
  );
  await t.step("paying a PAID payment id again → 409 ALREADY_PAID", async () => {
    await rejectsWith(
      sdk.payWithBillingKey({ paymentId: "sub-1", billingKey, ...order }),
      PortOne.Payment.PayWithBillingKeyError,
      "ALREADY_PAID",
    );
  });
  await t.step("a declining key → 502 PG_PROVIDER and a FAILED payment", async () => {
    const error = await rejectsWith(
      sdk.payWithBillingKey({ paymentId: "sub-2", billingKey: declining, ...order }),
      PortOne.Payment.PayWithBillingKeyError,
      "PG_PROVIDER",
    );
    assert.ok(error.data.type === "PG_PROVIDER" && error.data.pgCode && error.data.pgMessage);
    assert.equal(sandbox.getPayment("sub-2")?.status, "FAILED");
  });
  await t.step("an unknown key → 404 BILLING_KEY_NOT_FOUND (also from another store)", async () => {
    await rejectsWith(
      sdk.payWithBillingKey({ paymentId: "sub-3", billingKey: "billing-key-nope", ...order }),
      PortOne.Payment.PayWithBillingKeyError,
      "BILLING_KEY_NOT_FOUND",
    );
    await rejectsWith(
      sdk.billingKey.getBillingKeyInfo({ billingKey, storeId: "store-b" }),
      PortOne.Payment.BillingKey.GetBillingKeyInfoError,
      "BILLING_KEY_NOT_FOUND",
    );
  });
  await t.step("a missing orderName → 400 INVALID_REQUEST", async () => {
    await rejectsWith(
      sdk.payWithBillingKey(
        { paymentId: "sub-4", billingKey, amount: { total: 1 }, currency: "KRW" } as never,
      ),
      PortOne.Payment.PayWithBillingKeyError,
      "INVALID_REQUEST",
    );
  });
  await t.step("deleteBillingKey answers {deletedAt}; the key reads DELETED", async () => {
    const { deletedAt } = await sdk.billingKey.deleteBillingKey({
      billingKey,
      reason: "해지",
      requester: "CUSTOMER",
    });
    assert.ok(deletedAt);
    const info = await sdk.billingKey.getBillingKeyInfo({ billingKey });
    assert.equal(info.status, "DELETED");
    if (info.status === "DELETED") assert.equal(info.deletedAt, deletedAt);
    const request = sandbox.requests().find((entry) => entry.operation === "deleteBillingKey");
    assert.match(request?.query ?? "", /reason=/);
  });
  await t.step("deleting again → 409 BILLING_KEY_ALREADY_DELETED; paying → 409 too", async () => {
    await rejectsWith(
      sdk.billingKey.deleteBillingKey({ billingKey }),
      PortOne.Payment.BillingKey.DeleteBillingKeyError,
      "BILLING_KEY_ALREADY_DELETED",
    );
    await rejectsWith(
      sdk.payWithBillingKey({ paymentId: "sub-5", billingKey, ...order }),
      PortOne.Payment.PayWithBillingKeyError,
      "BILLING_KEY_ALREADY_DELETED",
    );
  });
  await t.step("deleting an unknown key → 404 BILLING_KEY_NOT_FOUND", async () => {
    await rejectsWith(
      sdk.billingKey.deleteBillingKey({ billingKey: "billing-key-nope" }),
      PortOne.Payment.BillingKey.DeleteBillingKeyError,
      "BILLING_KEY_NOT_FOUND",
    );
  });
});

Deno.test("identity verification: VERIFIED, READY and FAILED through the SDK", async (t) => {
  await using sandbox = await startSandbox();
  const sdk = PortOne.IdentityVerificationClient({ secret: sandbox.apiSecret, baseUrl: sandbox.url });
  const customer = {
    id: "cust-9",
    name: "홍길동",
    birthDate: "1990-01-02",
    gender: "MALE",
    phoneNumber: "01012345678",
    operator: "SKT",
    ci: "ci-value",
    di: "di-value",
    isForeigner: false,
  };

  await t.step("VERIFIED carries verifiedCustomer", async () => {
    const id = sandbox.completeIdentityVerification({ customer });
    const verification = await sdk.getIdentityVerification({ identityVerificationId: id });
    assert.equal(verification.status, "VERIFIED");
    if (verification.status !== "VERIFIED") return;
    assert.deepEqual(verification.verifiedCustomer, customer);
    assert.equal(verification.channel?.pgProvider, "DANAL");
    assert.ok(verification.pgTxId && verification.verifiedAt);
  });
  await t.step("READY and FAILED keep the requested customer", async () => {
    sandbox.completeIdentityVerification({ identityVerificationId: "iv-ready", status: "READY", customer });
    sandbox.completeIdentityVerification({ identityVerificationId: "iv-failed", status: "FAILED", customer });
    const ready = await sdk.getIdentityVerification({ identityVerificationId: "iv-ready" });
    assert.equal(ready.status, "READY");
    const failed = await sdk.getIdentityVerification({ identityVerificationId: "iv-failed" });
    assert.equal(failed.status, "FAILED");
    if (failed.status === "FAILED") assert.equal(failed.requestedCustomer.birthYear, "1990");
  });
  await t.step("an unknown id → 404 IDENTITY_VERIFICATION_NOT_FOUND", async () => {
    await rejectsWith(
      sdk.getIdentityVerification({ identityVerificationId: "iv-none" }),
      PortOne.IdentityVerification.GetIdentityVerificationError,
      "IDENTITY_VERIFICATION_NOT_FOUND",
    );
  });
});
