/**
 * A storm of real signed deliveries: the sandbox emits every webhook of 250 payment lives (ready, paid,
 * virtual-account deposits, partial and full cancels); we record them as PortOne signed them and replay
 * them shuffled, with 30% duplicates, 16 at a time, to four isolates of the webhook function. Afterwards
 * every payment in our database must equal the sandbox's truth and every webhook-id must be applied once.
 *
 * Throughput and latency are printed as a measurement, never asserted.
 */
import assert from "node:assert/strict";
import { startTestApp, type TestApp } from "./support/app.ts";

const payments = 250;
const duplicateShare = 0.3;
const concurrency = 16;

interface Recorded {
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly webhookId: string;
}

/** A seeded PRNG so a failing storm can be replayed. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function generateLives(app: TestApp, random: () => number): Promise<string[]> {
  const product = await app.createProduct({ price: 10000, name: "폭풍 테스트" });
  const ids: string[] = [];
  for (let i = 0; i < payments; i++) {
    const user = await app.createUser();
    const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
    const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
    ids.push(checkout.paymentId);
    const input = { ...checkout, channel: "TEST" as const, customerId: user.id };
    app.sandbox.openPaymentWindow({ ...input, method: "CARD" });
    const roll = random();
    if (roll < 0.1) {
      app.sandbox.failPayment(checkout.paymentId, "한도 초과");
      continue;
    }
    if (roll < 0.3) {
      app.sandbox.pay({ ...input, method: "VIRTUAL_ACCOUNT" });
      if (random() < 0.3) continue; // never deposited
      app.sandbox.depositVirtualAccount(checkout.paymentId);
      continue;
    }
    app.sandbox.pay({ ...input, method: "CARD" });
    let balance = 10000;
    const cancel = async (amount: number) => {
      await app.deps.portone.cancelPayment({
        paymentId: checkout.paymentId,
        amount,
        reason: "폭풍",
        requester: "ADMIN",
        currentCancellableAmount: balance,
        idempotencyKey: crypto.randomUUID(),
      });
      balance -= amount;
    };
    if (random() < 0.6) await cancel(2000);
    if (random() < 0.5) await cancel(3000);
    if (random() < 0.3) await cancel(balance);
  }
  return ids;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

Deno.test("webhook storm: ≥1,000 shuffled deliveries with 30% duplicates converge exactly once", async () => {
  await using app = await startTestApp({ env: { DB_POOL_MAX: "4" } });
  const random = mulberry32(20261126);

  // 1. Record every delivery exactly as the sandbox signs it.
  const recorded: Recorded[] = [];
  const recorder = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const headers = Object.fromEntries(request.headers);
    recorded.push({ headers, body: await request.text(), webhookId: headers["webhook-id"]! });
    return new Response(null, { status: 200 });
  });
  app.sandbox.setWebhookUrl(`http://127.0.0.1:${recorder.addr.port}/`);
  const paymentIds = await generateLives(app, random);
  await app.sandbox.idle();
  await recorder.shutdown();

  // 2. 30% duplicates, shuffled.
  const storm = [...recorded];
  const extra = Math.ceil(recorded.length * duplicateShare / (1 - duplicateShare));
  for (let i = 0; i < extra; i++) storm.push(recorded[Math.floor(random() * recorded.length)]!);
  for (let i = storm.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [storm[i], storm[j]] = [storm[j]!, storm[i]!];
  }
  assert.ok(storm.length >= 1000, `only ${storm.length} deliveries`);
  assert.ok(new Set(recorded.map((r) => r.body.match(/"paymentId":"([^"]+)"/)?.[1])).size >= 200);

  // 3. Replay 16 at a time to four isolates (separate connection pools, like separate edge workers),
  //    retrying a non-2xx after a pause the way PortOne would.
  const isolates = [0, 1, 2, 3].map(() => app.isolate());
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  const started = performance.now();
  try {
    await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
      while (next < storm.length) {
        const delivery = storm[next++]!;
        for (let attempt = 0; attempt < 5; attempt++) {
          const t0 = performance.now();
          const response = await isolates[worker % isolates.length]!.functions.webhook.fetch(
            new Request("http://127.0.0.1/functions/v1/webhook", {
              method: "POST",
              headers: delivery.headers,
              body: delivery.body,
            }),
          );
          await response.body?.cancel();
          latencies.push(performance.now() - t0);
          statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
          if (response.ok) break;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }));
  } finally {
    await Promise.all(isolates.map((isolate) => isolate.close()));
  }
  const seconds = (performance.now() - started) / 1000;

  // 4. The outcome.
  const fiveHundreds = [...statuses].filter(([status]) => status >= 500).reduce(
    (n, [, count]) => n + count,
    0,
  );
  assert.equal(fiveHundreds, 0, `5xx answers: ${JSON.stringify([...statuses])}`);
  for (const paymentId of paymentIds) {
    const truth = app.sandbox.getPayment(paymentId) as {
      status: string;
      amount: { cancelled: number; paid: number };
    };
    const [row] = await app.deps
      .sql`select status, cancelled_amount from public.payments where id = ${paymentId}`;
    assert.deepEqual(
      { ...row },
      { status: truth.status, cancelled_amount: truth.amount.cancelled },
      paymentId,
    );
  }
  const deliveriesPerId = new Map<string, number>();
  for (const d of storm) deliveriesPerId.set(d.webhookId, (deliveriesPerId.get(d.webhookId) ?? 0) + 1);
  const inbox = await app.deps.sql<
    { webhook_id: string; status: string; attempts: number; applied: number }[]
  >`
    select w.webhook_id, w.status, w.attempts,
           (select count(*)::int from public.payment_events e where e.webhook_id = w.webhook_id) as applied
    from public.webhook_logs w where w.webhook_id in ${app.deps.sql([...deliveriesPerId.keys()])}`;
  assert.equal(inbox.length, deliveriesPerId.size);
  for (const row of inbox) {
    assert.ok(row.status === "processed" || row.status === "ignored", `${row.webhook_id} ${row.status}`);
    assert.ok(row.applied <= 1, `${row.webhook_id} applied ${row.applied} times`);
    assert.ok(
      row.attempts >= deliveriesPerId.get(row.webhook_id)!,
      `${row.webhook_id} attempts ${row.attempts}`,
    );
  }

  const sorted = [...latencies].sort((a, b) => a - b);
  // deno-lint-ignore no-console -- the storm's measurement is part of its report
  console.log(
    [
      "webhook storm",
      `| deliveries | unique ids | payments | concurrency | seconds | deliveries/s | p50 ms | p99 ms | statuses |`,
      `| ${storm.length} | ${recorded.length} | ${paymentIds.length} | ${concurrency} | ${
        seconds.toFixed(2)
      } | ${(storm.length / seconds).toFixed(0)} | ${percentile(sorted, 0.5).toFixed(1)} | ${
        percentile(sorted, 0.99).toFixed(1)
      } | ${JSON.stringify(Object.fromEntries(statuses))} |`,
    ].join("\n"),
  );
});
