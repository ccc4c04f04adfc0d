/**
 * The operations page in a real browser: headless Chromium opens it as the merchant's admin, sees a webhook
 * that failed every delivery appear in the inbox and the health summary, opens the payment's timeline and
 * refunds it through the `cancel` function. The screenshot (.artifacts/operations.png) shows the timeline.
 */
import assert from "node:assert/strict";
import type { chromium } from "../support/deps.ts";
import { repoRoot } from "./keys.ts";
import { control, type RunningStack } from "./test-support.ts";

type Browser = Awaited<ReturnType<typeof chromium.launch>>;
const screenshot = `${repoRoot}.artifacts/operations.png`;

// deno-lint-ignore no-explicit-any -- responses are asserted field by field
type Json = any;

async function post(stack: RunningStack, path: string, token: string | null, body: unknown): Promise<Json> {
  const response = await fetch(`${stack.state.supabaseUrl}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      apikey: stack.state.anonKey,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  assert.equal(response.status, 200, `${path}: ${JSON.stringify(json)}`);
  return json;
}

/** A customer's paid order whose Transaction.Paid webhook failed all of PortOne's deliveries. */
async function paymentWithFailedWebhook(stack: RunningStack): Promise<string> {
  const customer = await post(stack, "/devstack/v1/token", null, {});
  const order = await post(stack, "/rest/v1/rpc/create_order", customer.accessToken, {
    items: [{ product_id: "coffee-beans", quantity: 1 }],
  });
  const checkout = await post(stack, "/functions/v1/prepare", customer.accessToken, { orderId: order.id });
  // PortOne cannot answer our re-fetch while it delivers: every attempt fails and the inbox keeps `failed`
  await control(stack.state, "/faults", { operation: "getPayment", mode: "status5xx", status: 500 });
  const paid = await control(stack.state, "/customer/pay", {
    paymentId: checkout.paymentId,
    storeId: checkout.storeId,
    channel: "TEST",
    method: "CARD",
    orderName: checkout.orderName,
    totalAmount: checkout.totalAmount,
    taxFreeAmount: checkout.taxFreeAmount,
    currency: checkout.currency,
    customerId: customer.userId,
  });
  assert.equal(paid.status, 200);
  await control(stack.state, "/truth/idle");
  await fetch(`${stack.state.sandbox!.controlUrl}/faults`, { method: "DELETE" }).then((r) =>
    r.body?.cancel()
  );
  // the customer's browser confirms afterwards, so the payment is PAID while its webhook stays failed
  const confirmed = await post(stack, "/functions/v1/confirm", customer.accessToken, {
    paymentId: checkout.paymentId,
  });
  assert.equal(confirmed.status, "PAID");
  return checkout.paymentId;
}

/**
 * The operations page's steps, run by browser.test.ts on its stack and browser (one stack, one Chromium
 * for both pages keeps the suite's load down). Needs a page of its own; `stack` is any running stack.
 */
export async function operationsPageSteps(t: Deno.TestContext, stack: RunningStack, browser: Browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  const state = () => page.locator("body").getAttribute("data-state");
  const errorText = async () => (await page.locator("#error").textContent()) ?? "";

  await t.step("the page loads for an admin: healthy, nothing failed yet", async () => {
    await page.goto(stack.state.supabaseUrl.replace("127.0.0.1", "localhost") + "/demo/operations");
    await page.waitForSelector("body[data-state=ready], body[data-state=error]");
    assert.equal(await state(), "ready", await errorText());
    assert.equal(await page.locator("#health-status").textContent(), "healthy");
    assert.equal(await page.locator("#webhook-rows tr[data-status=failed]").count(), 0);
  });

  let paymentId = "";
  await t.step("a failed webhook appears in the inbox and the health summary", async () => {
    paymentId = await paymentWithFailedWebhook(stack);
    await page.click("#refresh");
    const failedRow = page.locator(`#webhook-rows tr[data-status=failed]`);
    await failedRow.first().waitFor();
    assert.equal(await failedRow.count(), 1);
    assert.match(
      (await failedRow.textContent()) ?? "",
      new RegExp(`Transaction\\.Paid.*${paymentId}.*failed`),
    );
    assert.match(await page.locator("#health-status").textContent() ?? "", /needs attention/);
    const item = page.locator("#attention li[data-kind=webhook_failed]");
    assert.match((await item.textContent()) ?? "", new RegExp(paymentId));
  });

  await t.step("open the payment's timeline", async () => {
    await page.click(`#payment-rows tr[data-payment-id="${paymentId}"] button.open-timeline`);
    await page.waitForSelector("body[data-state=timeline], body[data-state=error]");
    assert.equal(await state(), "timeline", await errorText());
    const types = await page.locator("#timeline-entries li").evaluateAll((items) =>
      items.map((li) => li.getAttribute("data-type"))
    );
    assert.ok(types.includes("webhook") && types.includes("audit"), JSON.stringify(types));
    const webhook = await page.locator("#timeline-entries li[data-type=webhook]").textContent();
    assert.match(webhook ?? "", /Transaction\.Paid · failed after 6 attempt/);
    assert.equal(await page.locator("#differences").textContent(), "none");
  });

  await t.step("refund through the cancel function", async () => {
    await page.click("#refund");
    await page.waitForSelector("body[data-state=refunded], body[data-state=error]");
    assert.equal(await state(), "refunded", await errorText());
    assert.equal(await page.locator("#refund-result").textContent(), "refunded 32,000원 · CANCELLED");
    const truth = await control<{ status: string }>(
      stack.state,
      `/truth/payments/${paymentId}?storeId=${stack.state.sandbox!.storeId}`,
    );
    assert.equal(truth.body.status, "CANCELLED");
    const settled = await page.locator("#timeline-entries li[data-type=cancellation_settled]")
      .textContent();
    assert.match(settled ?? "", /32,000원 SUCCEEDED/);
    assert.match(await page.locator("#ours").textContent() ?? "", /CANCELLED/);
    assert.deepEqual(problems, []);
    await page.locator("#timeline").scrollIntoViewIfNeeded();
    await Deno.mkdir(`${repoRoot}.artifacts`, { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    // deno-lint-ignore no-console -- where to find the artifact
    console.log(`  screenshot: ${screenshot}`);
  });
}
