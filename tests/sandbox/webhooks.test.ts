import assert from "node:assert/strict";
import { PortOne } from "../support/deps.ts";
import { StandardWebhook } from "../support/deps.ts";
import { type Sandbox, startSandbox } from "./sandbox.ts";
import { type ReceivedWebhook, startReceiver } from "./test-support.ts";

const FACTOR = 1e-5;

const card = (paymentId: string) => ({
  paymentId,
  channel: "TEST" as const,
  method: "CARD" as const,
  orderName: "웹훅 주문",
  totalAmount: 1_000,
  currency: "KRW",
});

async function verifyBoth(sandbox: Sandbox, webhook: ReceivedWebhook): Promise<PortOne.Webhook.Webhook> {
  const event = await PortOne.Webhook.verify(sandbox.webhookSecret, webhook.body, webhook.headers);
  new StandardWebhook(sandbox.webhookSecret).verify(webhook.body, webhook.headers);
  return event;
}

async function rejectedByBoth(sandbox: Sandbox, webhook: ReceivedWebhook, reason: string): Promise<void> {
  await assert.rejects(
    PortOne.Webhook.verify(sandbox.webhookSecret, webhook.body, webhook.headers),
    (error: unknown) => error instanceof PortOne.Webhook.WebhookVerificationError && error.reason === reason,
  );
  assert.throws(() => new StandardWebhook(sandbox.webhookSecret).verify(webhook.body, webhook.headers));
}

Deno.test("every state change sends a signed 2024-04-25 webhook both verifiers accept", async () => {
  const receiver = startReceiver();
  const sandbox = await startSandbox({ webhookUrl: receiver.url, retryTimeFactor: FACTOR });
  try {
    const sdk = PortOne.PaymentClient({ secret: sandbox.apiSecret, baseUrl: sandbox.url });
    sandbox.pay(card("wh-1"));
    await sdk.cancelPayment({ paymentId: "wh-1", reason: "부분", amount: 400 });
    await sdk.cancelPayment({ paymentId: "wh-1", reason: "나머지" });
    sandbox.pay({ ...card("wh-va"), method: "VIRTUAL_ACCOUNT" });
    sandbox.depositVirtualAccount("wh-va");
    sandbox.pay({ ...card("wh-async"), asyncCancel: true });
    await sdk.cancelPayment({ paymentId: "wh-async", reason: "async" });
    sandbox.setPayPending(card("wh-pending"));
    sandbox.failPayment("wh-pending");
    sandbox.openPaymentWindow(card("wh-ready"));
    const billingKey = sandbox.issueBillingKey({ customerId: "c-1" });
    await sdk.billingKey.deleteBillingKey({ billingKey });
    await sandbox.idle();

    const events = [];
    for (const webhook of receiver.received) {
      assert.equal(webhook.headers["content-type"], "application/json");
      events.push(await verifyBoth(sandbox, webhook));
    }
    // Deliveries run concurrently (ordering is not guaranteed, as with PortOne), so compare sorted.
    assert.deepEqual(
      events.map((event) => String(event.type)).sort(),
      [
        "Transaction.Paid",
        "Transaction.PartialCancelled",
        "Transaction.Cancelled",
        "Transaction.VirtualAccountIssued",
        "Transaction.Paid",
        "Transaction.Paid",
        "Transaction.CancelPending",
        "Transaction.PayPending",
        "Transaction.Failed",
        "Transaction.Ready",
        "BillingKey.Issued",
        "BillingKey.Deleted",
      ].sort(),
    );
    const cancelled = events.find((event) => event.type === "Transaction.Cancelled");
    assert.ok(cancelled && cancelled.type === "Transaction.Cancelled");
    const payment = sandbox.getPayment("wh-1");
    assert.ok(payment && payment.status === "CANCELLED");
    assert.deepEqual(cancelled.data, {
      paymentId: "wh-1",
      storeId: sandbox.storeId,
      transactionId: payment.transactionId,
      cancellationId: (payment.cancellations.at(-1) as { id?: string } | undefined)?.id,
    });
    const issued = events.find((event) => event.type === "BillingKey.Issued");
    assert.ok(issued && issued.type === "BillingKey.Issued");
    assert.deepEqual(issued.data, { billingKey, storeId: sandbox.storeId });
    for (const event of events) {
      assert.ok(!Number.isNaN(Date.parse("timestamp" in event ? event.timestamp : "")));
    }
    assert.ok(sandbox.deliveries().every((delivery) => delivery.ok && delivery.attempt === 1));
  } finally {
    await sandbox.close();
    await receiver.close();
  }
});

Deno.test("failed deliveries retry on the jittered 1/4/16/64/256 minute schedule with one webhook-id", async (t) => {
  const receiver = startReceiver((index) => index < 2 ? 500 : 200);
  const sandbox = await startSandbox({ webhookUrl: receiver.url, retryTimeFactor: FACTOR, seed: 7 });
  try {
    await t.step("the schedule bounds scale with the time factor", () => {
      assert.deepEqual(
        sandbox.retryScheduleMs(),
        [1, 4, 16, 64, 256].map((minutes) => minutes * 60_000 * FACTOR),
      );
    });
    await t.step("a receiver failing twice gets the same message three times", async () => {
      sandbox.pay(card("retry-1"));
      await sandbox.idle();
      assert.equal(receiver.received.length, 3);
      const ids = new Set(receiver.received.map((webhook) => webhook.headers["webhook-id"]));
      assert.equal(ids.size, 1);
      assert.equal(
        new Set(receiver.received.map((webhook) => webhook.body)).size,
        1,
        "payload timestamp is fixed",
      );
      for (const webhook of receiver.received) await verifyBoth(sandbox, webhook);
      const attempts = sandbox.deliveries();
      assert.deepEqual(attempts.map((attempt) => [attempt.attempt, attempt.status]), [[1, 500], [2, 500], [
        3,
        200,
      ]]);
      const bounds = sandbox.retryScheduleMs();
      attempts.slice(0, 2).forEach((attempt, i) => {
        assert.ok(attempt.retryDelayMs !== undefined && attempt.retryDelayMs <= (bounds[i] ?? 0));
      });
    });
    await t.step("a receiver that never succeeds gets 1 + 5 attempts, then none", async () => {
      receiver.respond = () => 503;
      const before = receiver.received.length;
      sandbox.pay(card("retry-2"));
      await sandbox.idle();
      assert.equal(receiver.received.length - before, 6);
      assert.equal(
        sandbox.deliveries().filter((d) => d.payload.data.paymentId === "retry-2").at(-1)?.attempt,
        6,
      );
    });
    await t.step("network errors are retried too", async () => {
      const closed = startReceiver();
      const url = closed.url;
      await closed.close();
      sandbox.setWebhookUrl(url);
      sandbox.pay(card("retry-3"));
      await sandbox.idle();
      const attempts = sandbox.deliveries().filter((d) => d.payload.data.paymentId === "retry-3");
      assert.equal(attempts.length, 6);
      assert.ok(attempts.every((attempt) => attempt.error !== undefined && attempt.status === undefined));
    });
  } finally {
    await sandbox.close();
    await receiver.close();
  }
});

Deno.test("a receiver slower than the timeout counts as failed and is retried", async () => {
  const receiver = startReceiver(async (index) => {
    if (index === 0) await new Promise((resolve) => setTimeout(resolve, 300));
    return 200;
  });
  const sandbox = await startSandbox({
    webhookUrl: receiver.url,
    retryTimeFactor: FACTOR,
    webhookTimeoutMs: 50,
  });
  try {
    sandbox.pay(card("timeout-1"));
    await sandbox.idle();
    const attempts = sandbox.deliveries();
    assert.equal(attempts[0]?.error, "timeout");
    assert.equal(attempts.at(-1)?.ok, true);
    // Let the slow first handler finish before the receiver shuts down.
    await new Promise((resolve) => setTimeout(resolve, 300));
  } finally {
    await sandbox.close();
    await receiver.close();
  }
});

Deno.test("webhook fault modes", async (t) => {
  const receiver = startReceiver();
  const sandbox = await startSandbox({ webhookUrl: receiver.url, retryTimeFactor: FACTOR, seed: 3 });
  const fresh = () => receiver.received.splice(0);
  try {
    await t.step("duplicate: the same webhook-id arrives k times", async () => {
      sandbox.injectWebhookFault({ mode: "duplicate", copies: 3, times: 1 });
      sandbox.pay(card("dup-1"));
      sandbox.pay(card("dup-2"));
      await sandbox.idle();
      const got = fresh();
      assert.equal(got.length, 4);
      const ids = got.map((webhook) => webhook.headers["webhook-id"]);
      assert.equal(new Set(ids).size, 2);
      for (const webhook of got) await verifyBoth(sandbox, webhook);
    });
    await t.step("outOfOrder: a held batch is released in reverse", async () => {
      sandbox.injectWebhookFault({ mode: "outOfOrder", batchSize: 3, times: 3 });
      sandbox.pay(card("ooo-1"));
      sandbox.pay(card("ooo-2"));
      sandbox.pay(card("ooo-3"));
      await sandbox.idle();
      const ids = fresh().map((webhook) => JSON.parse(webhook.body).data.paymentId);
      assert.deepEqual(ids, ["ooo-3", "ooo-2", "ooo-1"]);
    });
    await t.step("outOfOrder: an incomplete batch is released after holdMs", async () => {
      sandbox.injectWebhookFault({ mode: "outOfOrder", batchSize: 5, holdMs: 30, times: 1 });
      sandbox.pay(card("ooo-4"));
      await sandbox.idle();
      assert.equal(fresh().length, 1);
    });
    await t.step("delay: the first attempt waits delayMs", async () => {
      sandbox.injectWebhookFault({ mode: "delay", delayMs: 120, times: 1 });
      const start = Date.now();
      sandbox.pay(card("delay-1"));
      await sandbox.idle();
      const [webhook] = fresh();
      assert.ok(webhook && webhook.receivedAtMs - start >= 100);
    });
    await t.step("unknownType: the SDK sees an unrecognized webhook", async () => {
      sandbox.injectWebhookFault({ mode: "unknownType", times: 1, type: "Transaction.Paid" });
      sandbox.pay(card("unknown-1"));
      await sandbox.idle();
      const [webhook] = fresh();
      assert.ok(webhook);
      const event = await verifyBoth(sandbox, webhook);
      assert.equal((event as { type: unknown }).type, "Transaction.SomethingNew");
      assert.ok(PortOne.Webhook.isUnrecognizedWebhook(event));
    });
    await t.step("badSignature: both verifiers reject it", async () => {
      receiver.respond = () => 400;
      sandbox.injectWebhookFault({ mode: "badSignature", times: 1 });
      sandbox.pay(card("bad-1"));
      await sandbox.idle();
      const got = fresh();
      assert.equal(got.length, 6, "a 400 is retried like any non-2xx");
      for (const webhook of got) await rejectedByBoth(sandbox, webhook, "NO_MATCHING_SIGNATURE");
      receiver.respond = () => 200;
    });
    await t.step("staleTimestamp: correctly signed but older than 5 minutes, both reject it", async () => {
      sandbox.injectWebhookFault({ mode: "staleTimestamp", times: 1 });
      sandbox.pay(card("stale-1"));
      await sandbox.idle();
      const [webhook] = fresh();
      assert.ok(webhook);
      assert.ok(Number(webhook.headers["webhook-timestamp"]) < Date.now() / 1000 - 300);
      await rejectedByBoth(sandbox, webhook, "TIMESTAMP_TOO_OLD");
    });
    await t.step("faults scoped by type leave other types alone", async () => {
      sandbox.injectWebhookFault({ mode: "duplicate", type: "Transaction.Cancelled", times: 1 });
      sandbox.pay(card("scope-1"));
      await sandbox.idle();
      assert.equal(fresh().length, 1);
      sandbox.clearWebhookFaults();
    });
    await t.step("sendWebhook delivers an arbitrary signed event", async () => {
      sandbox.sendWebhook({
        type: "Transaction.DisputeCreated",
        data: { paymentId: "p", storeId: sandbox.storeId, transactionId: "t" },
        webhookId: "webhook-custom-1",
        timestamp: "2026-01-01T00:00:00.000Z",
      });
      await sandbox.idle();
      const [webhook] = fresh();
      assert.ok(webhook);
      assert.equal(webhook.headers["webhook-id"], "webhook-custom-1");
      const event = await verifyBoth(sandbox, webhook);
      assert.equal(event.type, "Transaction.DisputeCreated");
      assert.equal((event as { timestamp: string }).timestamp, "2026-01-01T00:00:00.000Z");
    });
  } finally {
    await sandbox.close();
    await receiver.close();
  }
});

Deno.test("resendWebhook() re-sends the last webhook with the same id and payload", async () => {
  const receiver = startReceiver();
  const sandbox = await startSandbox({ webhookUrl: receiver.url, retryTimeFactor: FACTOR });
  try {
    const sdk = PortOne.PaymentClient({ secret: sandbox.apiSecret, baseUrl: sandbox.url });
    sandbox.pay(card("resend-1"));
    await sandbox.idle();
    const { webhook } = await sdk.resendWebhook({ paymentId: "resend-1" });
    await sandbox.idle();
    assert.equal(receiver.received.length, 2);
    const [first, second] = receiver.received;
    assert.equal(second?.headers["webhook-id"], first?.headers["webhook-id"]);
    assert.equal(second?.body, first?.body);
    assert.equal(webhook.id, first?.headers["webhook-id"]);
    assert.equal(webhook.trigger, "MANUAL");
    assert.equal(webhook.currentExecutionCount, 2);
    assert.ok(second);
    await verifyBoth(sandbox, second);
    const payment = await sdk.getPayment({ paymentId: "resend-1" });
    assert.equal(payment.status === "PAID" && payment.webhooks?.[0]?.status, "SUCCEEDED");

    await assert.rejects(
      sdk.resendWebhook({ paymentId: "resend-1", webhookId: "webhook-unknown" }),
      (error: unknown) =>
        error instanceof PortOne.Payment.ResendWebhookError && error.data.type === "WEBHOOK_NOT_FOUND",
    );
    await assert.rejects(
      sdk.resendWebhook({ paymentId: "resend-missing" }),
      (error: unknown) =>
        error instanceof PortOne.Payment.ResendWebhookError && error.data.type === "PAYMENT_NOT_FOUND",
    );
    for (let i = 0; i < 4; i++) await sdk.resendWebhook({ paymentId: "resend-1" });
    await assert.rejects(
      sdk.resendWebhook({ paymentId: "resend-1" }),
      (error: unknown) =>
        error instanceof PortOne.Payment.ResendWebhookError &&
        error.data.type === "MAX_WEBHOOK_RETRY_COUNT_REACHED",
    );
    await sandbox.idle();
  } finally {
    await sandbox.close();
    await receiver.close();
  }
});
