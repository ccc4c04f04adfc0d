import assert from "node:assert/strict";
import { PortOne } from "../support/deps.ts";
import { startSandbox } from "./sandbox.ts";
import { rejectsWith } from "./test-support.ts";

const card = (paymentId: string, totalAmount = 10_000) => ({
  paymentId,
  channel: "TEST" as const,
  method: "CARD" as const,
  orderName: `주문 ${paymentId}`,
  totalAmount,
  currency: "KRW",
});

Deno.test("getAllPaymentEventsByCursor lists PAID, PARTIAL_CANCELLED and CANCELLED events as the spec shapes them", async () => {
  let now = Date.parse("2026-11-01T00:00:00Z");
  await using sandbox = await startSandbox({ clock: () => new Date(now) });
  const sdk = PortOne.PaymentClient({
    secret: sandbox.apiSecret,
    baseUrl: sandbox.url,
    storeId: sandbox.storeId,
  });
  sandbox.pay(card("e-1"));
  now += 60_000;
  sandbox.consoleCancel({ paymentId: "e-1", amount: 3_000 });
  now += 60_000;
  sandbox.consoleCancel({ paymentId: "e-1" });
  sandbox.openPaymentWindow(card("e-2")); // READY: no money moved, no event

  const seen: { type: string; paymentId: string; eventAmount: number; createdAt: string }[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 5; page++) {
    const { items } = await sdk.getAllPaymentEventsByCursor({ size: 2, ...(cursor ? { cursor } : {}) });
    if (items.length === 0) break;
    for (const { paymentEvent, cursor: next } of items) {
      const event = paymentEvent as unknown as (typeof seen)[number] & { cancellation?: { status: string } };
      seen.push({
        type: event.type,
        paymentId: event.paymentId,
        eventAmount: event.eventAmount,
        createdAt: event.createdAt,
      });
      if (event.type !== "PAID") assert.equal(event.cancellation?.status, "SUCCEEDED");
      cursor = next;
    }
  }
  assert.deepEqual(seen.map(({ type, paymentId, eventAmount }) => ({ type, paymentId, eventAmount })), [
    { type: "PAID", paymentId: "e-1", eventAmount: 10_000 },
    { type: "PARTIAL_CANCELLED", paymentId: "e-1", eventAmount: -3_000 },
    { type: "CANCELLED", paymentId: "e-1", eventAmount: -7_000 },
  ]);
  // the window is on the event's creation time, not the payment's
  const late = await sdk.getAllPaymentEventsByCursor({ from: "2026-11-01T00:00:30Z" });
  assert.deepEqual(
    late.items.map((i: { paymentEvent: unknown }) => (i.paymentEvent as { type: string }).type),
    [
      "PARTIAL_CANCELLED",
      "CANCELLED",
    ],
  );
  await rejectsWith(sdk.getAllPaymentEventsByCursor({ size: 1001 }), Error as never, "INVALID_REQUEST");
  await rejectsWith(
    sdk.getAllPaymentEventsByCursor({ cursor: "bm9wZQ==" }),
    Error as never,
    "INVALID_REQUEST",
  );
  await rejectsWith(
    sdk.getAllPaymentEventsByCursor({ storeId: "store-unknown" }),
    Error as never,
    "FORBIDDEN",
  );
});

Deno.test("console refunds: performed at once or left pending; no currentCancellableAmount involved", async () => {
  await using sandbox = await startSandbox();
  sandbox.pay(card("k-1"));
  const partial = sandbox.consoleCancel({ paymentId: "k-1", amount: 4_000, pending: true });
  assert.equal(partial.status, "PAID");
  const pending = (partial as { cancellations?: { status: string; trigger?: string }[] }).cancellations;
  assert.deepEqual(pending?.map((c) => [c.status, c.trigger]), [["REQUESTED", "CONSOLE"]]);
  // the pending refund holds its share: only 6,000 are left for anyone
  assert.throws(() => sandbox.consoleCancel({ paymentId: "k-1", amount: 6_001 }));
  sandbox.completeCancellation({ paymentId: "k-1", outcome: "FAILED" });
  const full = sandbox.consoleCancel({ paymentId: "k-1" });
  assert.equal(full.status, "CANCELLED");
  assert.deepEqual(sandbox.refunds().map((r) => r.amount), [10_000]);
});

Deno.test("an expired virtual account refuses deposits", async () => {
  await using sandbox = await startSandbox();
  sandbox.pay({ ...card("v-1"), method: "VIRTUAL_ACCOUNT" });
  sandbox.expireVirtualAccount("v-1");
  assert.throws(() => sandbox.depositVirtualAccount("v-1"), /expired/);
  assert.equal(sandbox.getPayment("v-1")?.status, "VIRTUAL_ACCOUNT_ISSUED");
});

Deno.test("a refusal fault answers a documented PortOne error and performs nothing", async () => {
  await using sandbox = await startSandbox();
  const sdk = PortOne.PaymentClient({
    secret: sandbox.apiSecret,
    baseUrl: sandbox.url,
    storeId: sandbox.storeId,
  });
  sandbox.pay(card("r-1"));
  sandbox.injectFault({
    operation: "cancelPayment",
    mode: "refusal",
    status: 502,
    type: "PG_PROVIDER",
    times: 1,
  });
  const error = await rejectsWith(
    sdk.cancelPayment({ paymentId: "r-1", reason: "거절" }),
    Error as never,
    "PG_PROVIDER",
  );
  assert.equal((error.data as { pgCode?: string }).pgCode, "SANDBOX_REFUSED");
  assert.deepEqual(sandbox.refunds(), []);
});
