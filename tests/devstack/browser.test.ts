/**
 * A real browser: headless Chromium (Debian's package) opens the demo checkout page, buys a product
 * through the sandbox's payment window, sees the confirmed status, and cancels. The page is opened on a
 * different origin (localhost) than SUPABASE_URL (127.0.0.1), so every functions call is a cross-origin
 * request with a preflight: this is also the CORS test for browser clients. The same stack and browser then
 * drive the operations page (operations-page.ts).
 */
import assert from "node:assert/strict";
import { chromium } from "../support/deps.ts";
import { createScratchDatabase } from "../support/database.ts";
import { repoRoot } from "./keys.ts";
import { control, spawnStack } from "./test-support.ts";
import { operationsPageSteps } from "./operations-page.ts";

const chromiumPath = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const screenshot = `${repoRoot}.artifacts/checkout.png`;

Deno.test("devstack: demo checkout and the operations page in headless Chromium", async (t) => {
  // the suite's server when there is one (fast), else the stack's own throwaway cluster
  const suiteServer = Deno.env.get("TEST_ADMIN_DATABASE_URL");
  const scratch = suiteServer ? await createScratchDatabase(suiteServer) : null;
  const stack = await spawnStack({ env: scratch ? { DATABASE_URL: scratch.url } : {} });
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    // a broken step should fail in seconds, not after playwright's default 30 s
    page.setDefaultTimeout(10_000);
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`);
    });
    const pageUrl = stack.state.supabaseUrl.replace("127.0.0.1", "localhost") + "/";
    // Chromium does not report preflights as page requests; a cross-origin POST carrying Authorization is
    // always preflighted, so seeing the browser send Origin and get through is the proof.
    const crossOrigin: string[] = [];
    page.on("requestfinished", async (request) => {
      if (!request.url().startsWith(`${stack.state.supabaseUrl}/functions/v1/`)) return;
      const origin = (await request.allHeaders())["origin"];
      const response = await request.response();
      crossOrigin.push(
        `${request.method()} ${new URL(request.url()).pathname} ${origin} ${response?.status()}`,
      );
    });
    const state = () => page.locator("body").getAttribute("data-state");

    await t.step("the page loads products through supabase-js served by the stack", async () => {
      await page.goto(pageUrl);
      await page.waitForSelector("body[data-state=ready], body[data-state=error]", { timeout: 10_000 });
      assert.equal(await state(), "ready", await page.locator("#error").textContent() ?? "");
      const names = await page.locator("#products li span").allTextContents();
      assert.deepEqual(names, ["드립백 10개입 · 12,000원", "커피 입문서 · 18,000원", "원두 1kg · 32,000원"]);
    });

    let paymentId = "";
    await t.step("buy → prepare shows the payment window", async () => {
      await page.click("button[data-product=coffee-beans]");
      await page.waitForSelector("body[data-state=prepared], body[data-state=error]", { timeout: 10_000 });
      assert.equal(await state(), "prepared", await page.locator("#error").textContent() ?? "");
      assert.equal(await page.locator("#amount").textContent(), "32,000원");
      paymentId = (await page.locator("#payment-id").textContent()) ?? "";
      assert.match(paymentId, /^pay_[0-9a-f]{32}$/);
    });

    await t.step("pay in the sandbox window → confirm shows PAID", async () => {
      await page.click("#pay");
      await page.waitForSelector("body[data-state=confirmed], body[data-state=error]", { timeout: 10_000 });
      assert.equal(await state(), "confirmed", await page.locator("#error").textContent() ?? "");
      assert.equal(await page.locator("#payment-status").textContent(), "PAID");
      assert.equal(await page.locator("#order-status").textContent(), "paid");
      const truth = await control<{ status: string; amount: { total: number } }>(
        stack.state,
        `/truth/payments/${paymentId}?storeId=${stack.state.sandbox!.storeId}`,
      );
      assert.equal(truth.body.status, "PAID");
      assert.equal(truth.body.amount.total, 32000);
    });

    await t.step("cancel", async () => {
      await page.click("#cancel");
      await page.waitForSelector("body[data-state=cancelled], body[data-state=error]", { timeout: 10_000 });
      const after = await state();
      assert.equal(after, "cancelled", await page.locator("#error").textContent() ?? "");
      const truth = await control<{ status: string }>(
        stack.state,
        `/truth/payments/${paymentId}?storeId=${stack.state.sandbox!.storeId}`,
      );
      assert.equal(truth.body.status, "CANCELLED");
      assert.equal(await page.locator("#payment-status").textContent(), "CANCELLED");
      assert.equal(await page.locator("#cancel-result").textContent(), "refunded 32,000원");
      assert.notEqual(await page.locator("#order-status").textContent(), "paid");
    });

    await t.step("cross-origin calls went through CORS preflights without browser errors", async () => {
      const origin = new URL(pageUrl).origin;
      assert.notEqual(origin, new URL(stack.state.supabaseUrl).origin);
      assert.deepEqual(crossOrigin.filter((line) => !line.includes("/cancel ")), [
        `POST /functions/v1/prepare ${origin} 200`,
        `POST /functions/v1/confirm ${origin} 200`,
      ]);
      assert.deepEqual(problems, []);
      await Deno.mkdir(`${repoRoot}.artifacts`, { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
      // deno-lint-ignore no-console -- where to find the artifact
      console.log(`  screenshot: ${screenshot}`);
    });

    // the operations page on the same stack and browser
    await operationsPageSteps(t, stack, browser);
  } finally {
    await browser.close();
    await stack.stop();
    await scratch?.drop();
  }
});
