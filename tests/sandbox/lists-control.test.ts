import assert from "node:assert/strict";
import { PortOne } from "../support/deps.ts";
import { startSandbox } from "./sandbox.ts";
import { rejectsWith } from "./test-support.ts";

const card = (paymentId: string) => ({
  paymentId,
  channel: "TEST" as const,
  method: "CARD" as const,
  orderName: `주문 ${paymentId}`,
  totalAmount: 1_000,
  currency: "KRW",
});

Deno.test("getPayments filters by status (PENDING = PAY_PENDING) and pages", async () => {
  await using sandbox = await startSandbox();
  const sdk = PortOne.PaymentClient({ secret: sandbox.apiSecret, baseUrl: sandbox.url });
  for (const id of ["l-1", "l-2", "l-3"]) sandbox.pay(card(id));
  sandbox.setPayPending(card("l-4"));
  const paid = await sdk.getPayments({ filter: { status: ["PAID"] }, page: { number: 0, size: 2 } });
  assert.equal(paid.page.totalCount, 3);
  assert.equal(paid.items.length, 2);
  const pending = await sdk.getPayments({
    filter: { status: ["PENDING"], timestampType: "STATUS_CHANGED_AT" },
  });
  assert.deepEqual(pending.items.map((payment) => payment.status), ["PAY_PENDING"]);
  const none = await sdk.getPayments({ filter: { until: "2000-01-01T00:00:00Z" } });
  assert.equal(none.page.totalCount, 0);
});

Deno.test("getAllPaymentsByCursor walks every payment once", async () => {
  await using sandbox = await startSandbox();
  const sdk = PortOne.PaymentClient({ secret: sandbox.apiSecret, baseUrl: sandbox.url });
  for (let i = 0; i < 5; i++) sandbox.pay(card(`c-${i}`));
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 5; page++) {
    const { items } = await sdk.getAllPaymentsByCursor({ size: 2, cursor });
    if (items.length === 0) break;
    for (const item of items) seen.push("id" in item.payment ? item.payment.id : "");
    cursor = items.at(-1)?.cursor;
  }
  assert.deepEqual(seen, ["c-0", "c-1", "c-2", "c-3", "c-4"]);
  await rejectsWith(
    sdk.getAllPaymentsByCursor({ size: 1001 }),
    PortOne.Payment.GetAllPaymentsError,
    "INVALID_REQUEST",
  );
});

Deno.test("closeVirtualAccount closes an unpaid account and refuses others", async () => {
  await using sandbox = await startSandbox();
  const sdk = PortOne.PaymentClient({ secret: sandbox.apiSecret, baseUrl: sandbox.url });
  sandbox.pay({ ...card("vac-1"), method: "VIRTUAL_ACCOUNT" });
  const { closedAt } = await sdk.closeVirtualAccount({ paymentId: "vac-1" });
  assert.ok(closedAt);
  assert.equal(sandbox.getPayment("vac-1")?.status, "CANCELLED");
  await rejectsWith(
    sdk.closeVirtualAccount({ paymentId: "vac-1" }),
    PortOne.Payment.CloseVirtualAccountError,
    "PAYMENT_NOT_WAITING_FOR_DEPOSIT",
  );
  await rejectsWith(
    sdk.closeVirtualAccount({ paymentId: "vac-none" }),
    PortOne.Payment.CloseVirtualAccountError,
    "PAYMENT_NOT_FOUND",
  );
});

Deno.test("the control API simulates customers over HTTP with CORS, and is absent from the API port", async () => {
  await using sandbox = await startSandbox();
  const post = (path: string, body: unknown) =>
    fetch(`${sandbox.controlUrl}${path}`, { method: "POST", body: JSON.stringify(body) });
  const paid = await post("/customer/pay", { ...card("ctl-1"), method: "VIRTUAL_ACCOUNT" });
  assert.equal(paid.headers.get("access-control-allow-origin"), "*");
  assert.equal((await paid.json()).status, "VIRTUAL_ACCOUNT_ISSUED");
  assert.equal((await (await post("/customer/deposit", { paymentId: "ctl-1" })).json()).status, "PAID");
  const truth = await fetch(`${sandbox.controlUrl}/truth/payments/ctl-1`);
  assert.equal((await truth.json()).status, "PAID");
  const again = await post("/customer/pay", card("ctl-1"));
  assert.equal(again.status, 409);
  assert.equal((await again.json()).type, "ALREADY_PAID");
  const preflight = await fetch(`${sandbox.controlUrl}/customer/pay`, { method: "OPTIONS" });
  await preflight.body?.cancel();
  assert.equal(preflight.status, 204);
  const { billingKey } = await (await post("/customer/billing-keys", { customerId: "c" })).json();
  assert.match(billingKey, /^billing-key-/);
  const onApi = await fetch(`${sandbox.url}/customer/pay`, { method: "POST", body: "{}" });
  assert.equal(onApi.status, 404);
  await onApi.body?.cancel();
  const requests = await (await fetch(`${sandbox.controlUrl}/truth/requests`)).json();
  assert.equal(requests.at(-1).path, "/customer/pay");
});

Deno.test("main.ts starts standalone, prints its URLs and stops on SIGTERM", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", new URL("./main.ts", import.meta.url).pathname],
    env: { SANDBOX_TIME_FACTOR: "0.001" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const info = JSON.parse(text.split("\n")[0] ?? "{}");
  const response = await fetch(`${info.url}/payments/none`, {
    headers: { authorization: `PortOne ${info.apiSecret}` },
  });
  assert.equal(response.status, 404);
  assert.equal((await response.json()).type, "PAYMENT_NOT_FOUND");
  assert.match(info.webhookSecret, /^whsec_/);
  child.kill("SIGTERM");
  await reader.cancel();
  const status = await child.status;
  assert.equal(status.success, true);
});
