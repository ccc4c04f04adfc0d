import assert from "node:assert/strict";
import { PortOne } from "../support/deps.ts";
import { startSandbox } from "./sandbox.ts";
import { rejectsWith } from "./test-support.ts";

const card = (paymentId: string) => ({
  paymentId,
  channel: "TEST" as const,
  method: "CARD" as const,
  orderName: "장애 주문",
  totalAmount: 5_000,
  currency: "KRW",
});

Deno.test("REST fault modes as the SDK experiences them", async (t) => {
  await using sandbox = await startSandbox({ seed: 11 });
  const sdk = PortOne.PaymentClient({ secret: sandbox.apiSecret, baseUrl: sandbox.url });
  sandbox.pay(card("f-1"));

  await t.step("latency delays the answer", async () => {
    sandbox.injectFault({ operation: "getPayment", mode: "latency", latencyMs: 150, times: 1 });
    const start = Date.now();
    assert.equal((await sdk.getPayment({ paymentId: "f-1" })).status, "PAID");
    assert.ok(Date.now() - start >= 140);
  });
  await t.step("status5xx → the operation error with INTERNAL_SERVER_ERROR data", async () => {
    sandbox.injectFault({ operation: "getPayment", mode: "status5xx", status: 503, times: 1 });
    await rejectsWith(
      sdk.getPayment({ paymentId: "f-1" }),
      PortOne.Payment.GetPaymentError,
      "INTERNAL_SERVER_ERROR",
    );
    assert.equal(sandbox.requests().at(-1)?.status, 503);
  });
  await t.step("html502 → SyntaxError from response.json()", async () => {
    sandbox.injectFault({ operation: "getPayment", mode: "html502", times: 1 });
    await assert.rejects(sdk.getPayment({ paymentId: "f-1" }), SyntaxError);
  });
  await t.step("reset → TypeError, and without applyBeforeFailure nothing was cancelled", async () => {
    sandbox.injectFault({ operation: "cancelPayment", mode: "reset", times: 1 });
    await assert.rejects(sdk.cancelPayment({ paymentId: "f-1", reason: "x", amount: 100 }), TypeError);
    assert.equal(sandbox.refunds().length, 0);
    assert.equal(sandbox.requests().at(-1)?.status, "reset");
  });
  await t.step("applyBeforeFailure: PortOne refunded but the answer was a 500", async () => {
    sandbox.injectFault({
      operation: "cancelPayment",
      mode: "status5xx",
      times: 1,
      applyBeforeFailure: true,
    });
    await rejectsWith(
      sdk.cancelPayment({ paymentId: "f-1", reason: "x", amount: 100 }),
      PortOne.Payment.CancelPaymentError,
      "INTERNAL_SERVER_ERROR",
    );
    assert.equal(sandbox.refunds().length, 1);
    assert.equal(sandbox.getPayment("f-1")?.status, "PARTIAL_CANCELLED");
  });
  await t.step("hang never answers; the client's abort ends it", async () => {
    sandbox.injectFault({ method: "GET", path: "/payments/f-1", mode: "hang", times: 1 });
    await assert.rejects(
      fetch(`${sandbox.url}/payments/f-1`, {
        headers: { authorization: `PortOne ${sandbox.apiSecret}` },
        signal: AbortSignal.timeout(100),
      }),
    );
    // The server notices the disconnect and logs the hang.
    for (let i = 0; i < 20 && sandbox.requests().at(-1)?.status !== "hang"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(sandbox.requests().at(-1)?.status, "hang");
  });
  await t.step("times limits a fault to the next N calls", async () => {
    sandbox.injectFault({ operation: "getPayment", mode: "status5xx", times: 2 });
    await assert.rejects(sdk.getPayment({ paymentId: "f-1" }));
    await assert.rejects(sdk.getPayment({ paymentId: "f-1" }));
    assert.equal((await sdk.getPayment({ paymentId: "f-1" })).status, "PARTIAL_CANCELLED");
  });
  await t.step("fraction fails a seeded share of calls", async () => {
    sandbox.injectFault({ operation: "getPayment", mode: "status5xx", fraction: 0.5 });
    let failures = 0;
    for (let i = 0; i < 40; i++) {
      try {
        await sdk.getPayment({ paymentId: "f-1" });
      } catch {
        failures++;
      }
    }
    sandbox.clearFaults();
    assert.ok(failures > 5 && failures < 35, `failures=${failures}`);
    assert.equal((await sdk.getPayment({ paymentId: "f-1" })).status, "PARTIAL_CANCELLED");
  });
});

Deno.test("a hanging request does not outlive close()", async () => {
  const sandbox = await startSandbox();
  sandbox.injectFault({ operation: "getPayment", mode: "hang" });
  // Settle into a value right away so the rejection during close() is never unhandled.
  const pending = fetch(`${sandbox.url}/payments/x`, {
    headers: { authorization: `PortOne ${sandbox.apiSecret}` },
  })
    .then((response) => response, (error: unknown) => error);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await sandbox.close();
  assert.ok((await pending) instanceof TypeError);
});
