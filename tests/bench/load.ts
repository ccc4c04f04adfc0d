/**
 * Webhook load: closed-loop clients posting signed deliveries to one server process at a fixed concurrency
 * for a fixed time. Each delivery to the real webhook names a payment that is paid at PortOne and not yet
 * in our database, so every measured delivery applies a payment (the work PortOne's deliveries cause).
 */
import type { TestApp } from "../support/app.ts";
import type { Delivery } from "./support.ts";
import { percentile } from "./support.ts";

export interface CellResult {
  readonly requests: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Replies other than 200 (a correct run has none). */
  readonly failures: number;
  /** True when the supply of fresh payments ran out before the time did. */
  readonly exhausted: boolean;
}

/** Payments prepared in our database and paid at the sandbox, in one statement plus in-memory sandbox calls. */
export async function createPaidPayments(app: TestApp, count: number): Promise<string[]> {
  const user = await app.createUser();
  const sql = app.deps.sql;
  const batch = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const rows = await sql<{ id: string; order_name: string; total_amount: number; currency: string }[]>`
    with o as (
      insert into public.orders (user_id, order_name, total_amount, currency)
      select ${user.id}, ${batch} || ' ' || g, 1000, 'KRW' from generate_series(1, ${count}) g
      returning id, user_id, order_name, total_amount, tax_free_amount, currency
    ), p as (
      insert into public.payments
        (id, order_id, user_id, store_id, channel_key, total_amount, tax_free_amount, currency, pre_registered_at)
      select 'bench' || replace(gen_random_uuid()::text, '-', ''), o.id, o.user_id, ${app.sandbox.storeId},
             ${app.sandbox.channels.test.key}, o.total_amount, o.tax_free_amount, o.currency, now()
      from o
      returning id, order_id
    )
    select p.id, o.order_name, o.total_amount, o.currency from p join o on o.id = p.order_id`;
  for (const row of rows) {
    app.sandbox.pay({
      paymentId: row.id,
      orderName: row.order_name,
      totalAmount: row.total_amount,
      currency: row.currency,
      channel: "TEST",
      method: "CARD",
      customerId: user.id,
    });
  }
  return rows.map((row) => row.id);
}

/** The raw samples of one or more runs of a cell. */
export interface CellSamples {
  latencies: number[];
  seconds: number;
  failures: number;
  exhausted: boolean;
}

export function emptySamples(): CellSamples {
  return { latencies: [], seconds: 0, failures: 0, exhausted: false };
}

export function summarize(samples: CellSamples): CellResult {
  return {
    requests: samples.latencies.length,
    seconds: samples.seconds,
    perSecond: samples.latencies.length / samples.seconds,
    p50Ms: percentile(samples.latencies, 0.5),
    p99Ms: percentile(samples.latencies, 0.99),
    failures: samples.failures,
    exhausted: samples.exhausted,
  };
}

async function post(url: string, delivery: Delivery): Promise<number> {
  const response = await fetch(url, { method: "POST", headers: delivery.headers, body: delivery.body });
  await response.arrayBuffer();
  return response.status;
}

/** `warmup` requests first (not measured), then as many as fit in `durationMs`, added to `into`. */
export async function runCell(
  into: CellSamples,
  url: string,
  concurrency: number,
  durationMs: number,
  next: () => Delivery | undefined,
  warmup = Math.max(concurrency, 16),
): Promise<void> {
  let warmupLeft = warmup;
  await Promise.all(Array.from({ length: Math.min(concurrency, warmup) }, async () => {
    while (warmupLeft-- > 0) {
      const delivery = next();
      if (!delivery) return;
      await post(url, delivery);
    }
  }));
  const latencies = into.latencies;
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const delivery = next();
      if (!delivery) {
        into.exhausted = true;
        return;
      }
      const t0 = performance.now();
      const status = await post(url, delivery);
      latencies.push(performance.now() - t0);
      if (status !== 200) into.failures++;
    }
  }));
  into.seconds += (performance.now() - started) / 1000;
}
