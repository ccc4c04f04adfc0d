/**
 * Model-based convergence test: seeded random histories of many payments, where PortOne (the sandbox) is
 * the model and our database must always stay safe and, after a final reconcile, equal it.
 *
 * A history interleaves customer payments (card, easy pay, virtual accounts issued, deposited, expired),
 * billing-key charges, our full and partial cancels (some concurrent, some whose answer is lost), refunds
 * made in PortOne's console, asynchronous cancels PortOne later completes or fails, dropped, duplicated,
 * reordered and delayed webhooks, PortOne 5xx, resets and timeouts, reconcile runs with small limits, and a
 * PostgreSQL restart.
 *
 * After every step: no request answered 500 for an existing payment, and PortOne never refunded more than
 * was paid. After the final reconcile, for every payment: our row equals PortOne's (status, paid,
 * cancelled, each cancellation's status), nothing is reserved without an unsettled PortOne request, the
 * order follows its paying payment, and each real change has exactly one audit event.
 *
 *   CONVERGENCE_SEED       the first history's seed (default fixed; a failure prints the one that broke)
 *   CONVERGENCE_STEPS      steps per history (default 75)
 *   CONVERGENCE_HISTORIES  histories to run (default 2), seeds SEED, SEED+1, …
 *   CONVERGENCE_RESTARTS   0 disables the PostgreSQL restart (default: one per history, on its own cluster)
 *   CONVERGENCE_MINUTES    stop starting histories after this long (a bounded large run)
 *   CONVERGENCE_FIGURES    print one line per history and the totals
 */
import assert from "node:assert/strict";
import { seededRandom } from "./sandbox/faults.ts";
import {
  callFunction,
  type CallResult,
  startTestApp,
  type TestApp,
  testReconcileSecret,
  type TestUser,
} from "./support/app.ts";
import { restartableDatabase } from "./support/restartable-database.ts";

const seed0 = Number(Deno.env.get("CONVERGENCE_SEED") ?? 20261201);
const stepsPerHistory = Number(Deno.env.get("CONVERGENCE_STEPS") ?? 75);
const histories = Number(Deno.env.get("CONVERGENCE_HISTORIES") ?? 2);
const restarts = Deno.env.get("CONVERGENCE_RESTARTS") !== "0";
const budgetMs = Number(Deno.env.get("CONVERGENCE_MINUTES") ?? Infinity) * 60_000;
const printFigures = Deno.env.get("CONVERGENCE_FIGURES") !== undefined;
const say = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(`${line}\n`));

type Method = "CARD" | "EASY_PAY" | "VIRTUAL_ACCOUNT" | "BILLING";

interface Tracked {
  readonly paymentId: string;
  readonly orderId: string;
  readonly user: TestUser;
  readonly method: Method;
}

interface LostCancel {
  readonly paymentId: string;
  readonly key: string;
  readonly body: Record<string, unknown>;
}

interface Truth {
  status: string;
  paid: number;
  cancelled: number;
  total: number;
  cancellations: { id: string; status: string; amount: number }[];
}

const refundAccount = { bank: "SHINHAN", number: "110123456789", holderName: "홍길동" };

class History {
  readonly log: string[] = [];
  readonly payments: Tracked[] = [];
  readonly lost: LostCancel[] = [];
  readonly users: TestUser[] = [];
  readonly answers: { what: string; result: CallResult }[] = [];
  billingKeys = new Map<string, string>();
  webhooksDroppedFor = 0;

  constructor(
    readonly seed: number,
    readonly app: TestApp,
    readonly admin: TestUser,
    readonly isolates: { functions: TestApp["functions"] }[],
    readonly webhookUrl: string,
    readonly restartDatabase: ((mode: "fast" | "immediate") => Promise<void>) | undefined,
    readonly random = seededRandom(seed),
  ) {}

  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.random() * items.length)];
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  truth(paymentId: string): Truth | undefined {
    const payment = this.app.sandbox.getPayment(paymentId) as unknown as {
      status: string;
      amount: { total: number; paid: number; cancelled: number };
      cancellations?: { id: string; status: string; totalAmount: number }[];
    } | undefined;
    if (!payment) return undefined;
    return {
      status: payment.status,
      paid: payment.amount.paid,
      cancelled: payment.amount.cancelled,
      total: payment.amount.total,
      cancellations: (payment.cancellations ?? []).map((c) => ({
        id: c.id,
        status: c.status,
        amount: c.totalAmount,
      })),
    };
  }

  async call(
    what: string,
    fn: keyof TestApp["functions"],
    init: Parameters<TestApp["call"]>[1],
    via?: number,
  ) {
    const functions = via === undefined ? this.app.functions : this.isolates[via]!.functions;
    const result = await callFunction(functions[fn], fn, init);
    this.answers.push({ what, result });
    this.log.push(
      `    → ${what}: ${result.status}${result.status >= 400 ? ` ${result.body?.error?.code}` : ""}`,
    );
    return result;
  }

  async user(): Promise<TestUser> {
    if (this.users.length < 4 || this.chance(0.3)) this.users.push(await this.app.createUser());
    return this.pick(this.users)!;
  }

  /** A PortOne fault on the next call of `operation`, of a random kind (or none). */
  weather(
    operation: "cancelPayment" | "getPayment" | "payWithBillingKey" | "getAllPaymentsByCursor",
  ): string {
    const roll = this.random();
    const kinds = [
      [0.55, "none"],
      [0.65, "reset"],
      [0.75, "status5xx"],
      [0.88, "lost"],
      [0.94, "hang"],
      [1, "hang-after"],
    ] as const;
    const kind = kinds.find(([bound]) => roll < bound)![1];
    if (kind === "none") return "";
    const sandbox = this.app.sandbox;
    if (kind === "reset") sandbox.injectFault({ operation, mode: "reset", times: 1 });
    if (kind === "status5xx") sandbox.injectFault({ operation, mode: "status5xx", status: 503, times: 1 });
    if (kind === "lost") {
      sandbox.injectFault({ operation, mode: "reset", times: 1, applyBeforeFailure: true });
    }
    if (kind === "hang") sandbox.injectFault({ operation, mode: "hang", times: 1 });
    if (kind === "hang-after") {
      sandbox.injectFault({ operation, mode: "hang", times: 1, applyBeforeFailure: true });
    }
    return ` [${operation}: ${kind}]`;
  }

  // ---------------------------------------------------------------------------------------------
  // actions

  async newPayment() {
    const user = await this.user();
    const method = this.pick<Method>([
      "CARD",
      "CARD",
      "EASY_PAY",
      "VIRTUAL_ACCOUNT",
      "VIRTUAL_ACCOUNT",
      "BILLING",
    ])!;
    const price = 1000 * (1 + Math.floor(this.random() * 30));
    const product = await this.app.createProduct({ price });
    const order = await this.app.createOrder(user, [{ productId: product, quantity: 1 }]);
    if (method === "BILLING") return await this.billingCharge(user, order.id);
    const payMethod = method === "EASY_PAY"
      ? "EASY_PAY"
      : method === "VIRTUAL_ACCOUNT"
      ? "VIRTUAL_ACCOUNT"
      : "CARD";
    const prepared = await this.call("prepare", "prepare", { user, body: { orderId: order.id, payMethod } });
    if (prepared.status !== 200) return;
    const checkout = prepared.body;
    const asyncCancel = method !== "VIRTUAL_ACCOUNT" && this.chance(0.3);
    this.app.sandbox.pay({
      paymentId: checkout.paymentId,
      orderName: checkout.orderName,
      totalAmount: checkout.totalAmount,
      currency: checkout.currency,
      channel: method === "EASY_PAY" ? "LIVE" : "TEST",
      method,
      customerId: user.id,
      asyncCancel,
    });
    this.payments.push({ paymentId: checkout.paymentId, orderId: order.id, user, method });
    this.log.push(`  ${checkout.paymentId}: ${method} ${price}${asyncCancel ? " (async cancels)" : ""}`);
    if (this.chance(0.6)) {
      const weather = this.weather("getPayment");
      await this.call(`confirm${weather}`, "confirm", { user, body: { paymentId: checkout.paymentId } });
    }
  }

  async billingCharge(user: TestUser, orderId: string) {
    let keyId = this.billingKeys.get(user.id);
    if (!keyId) {
      const billingKey = this.app.sandbox.issueBillingKey({ customerId: user.id });
      const registered = await this.call("register billing key", "billing-key", {
        user,
        body: { billingKey },
      });
      if (registered.status !== 200) return;
      keyId = registered.body.id as string;
      this.billingKeys.set(user.id, keyId);
    }
    const weather = this.weather("payWithBillingKey");
    const key = crypto.randomUUID();
    const init = { user, path: `/${keyId}/pay`, body: { orderId }, headers: { "idempotency-key": key } };
    let charged = await this.call(`billing charge${weather}`, "billing-key", init);
    if (charged.status >= 500) {
      this.app.sandbox.clearFaults();
      charged = await this.call("billing charge retried with the same key", "billing-key", init);
    }
    if (charged.status === 200) {
      this.payments.push({ paymentId: charged.body.paymentId, orderId, user, method: "BILLING" });
      this.log.push(`  ${charged.body.paymentId}: BILLING`);
    }
  }

  async confirm() {
    const p = this.pick(this.payments);
    if (!p) return;
    const weather = this.weather("getPayment");
    await this.call(`confirm ${p.paymentId}${weather}`, "confirm", {
      user: p.user,
      body: { paymentId: p.paymentId },
    });
  }

  deposit() {
    const p = this.pick(
      this.payments.filter((x) => this.truth(x.paymentId)?.status === "VIRTUAL_ACCOUNT_ISSUED"),
    );
    if (!p) return;
    try {
      this.app.sandbox.depositVirtualAccount(p.paymentId);
      this.log.push(`  customer deposits into ${p.paymentId}`);
    } catch (error) {
      this.log.push(`  deposit into ${p.paymentId} refused: ${(error as Error).message}`);
    }
  }

  expire() {
    const p = this.pick(
      this.payments.filter((x) => this.truth(x.paymentId)?.status === "VIRTUAL_ACCOUNT_ISSUED"),
    );
    if (!p) return;
    this.app.sandbox.expireVirtualAccount(p.paymentId);
    this.log.push(`  the account of ${p.paymentId} expires`);
  }

  cancellable(): Tracked[] {
    return this.payments.filter((x) => {
      const status = this.truth(x.paymentId)?.status;
      return status === "PAID" || status === "PARTIAL_CANCELLED";
    });
  }

  cancelBody(p: Tracked): Record<string, unknown> {
    const truth = this.truth(p.paymentId)!;
    const left = truth.paid - truth.cancelled;
    const full = left <= 0 || this.chance(0.3);
    const amount = full ? undefined : Math.max(1, Math.floor(left * this.random() / 100) * 100 || 100);
    return {
      paymentId: p.paymentId,
      ...(amount !== undefined ? { amount } : {}),
      reason: "변심",
      ...(p.method === "VIRTUAL_ACCOUNT" ? { refundAccount } : {}),
    };
  }

  async ourCancel() {
    const p = this.pick(this.chance(0.9) ? this.cancellable() : this.payments);
    if (!p) return;
    const body = this.cancelBody(p);
    const key = crypto.randomUUID();
    const weather = this.weather("cancelPayment");
    const result = await this.call(
      `cancel ${p.paymentId} ${body.amount ?? "all"}${weather}`,
      "cancel",
      { user: this.admin, body, headers: { "idempotency-key": key } },
    );
    if (result.status >= 500) this.lost.push({ paymentId: p.paymentId, key, body });
  }

  async concurrentCancels() {
    const p = this.pick(this.cancellable());
    if (!p) return;
    const bodies = [this.cancelBody(p), this.cancelBody(p)];
    this.log.push(`  two cancels of ${p.paymentId} at once`);
    const keys = bodies.map(() => crypto.randomUUID());
    const results = await Promise.all(
      bodies.map((body, i) =>
        this.call(`cancel ${p.paymentId} ${body.amount ?? "all"} (isolate ${i})`, "cancel", {
          user: this.admin,
          body,
          headers: { "idempotency-key": keys[i]! },
        }, i)
      ),
    );
    results.forEach((result, i) => {
      if (result.status >= 500) this.lost.push({ paymentId: p.paymentId, key: keys[i]!, body: bodies[i]! });
    });
  }

  async retryLost() {
    const lost = this.lost.shift();
    if (!lost) return;
    const result = await this.call(`retry cancel ${lost.paymentId} with the same key`, "cancel", {
      user: this.admin,
      body: lost.body,
      headers: { "idempotency-key": lost.key },
    });
    if (result.status >= 500) this.lost.push(lost);
  }

  consoleCancel() {
    const p = this.pick(this.cancellable());
    if (!p) return;
    const truth = this.truth(p.paymentId)!;
    const pending = truth.cancellations.filter((c) => c.status === "REQUESTED").reduce(
      (s, c) => s + c.amount,
      0,
    );
    const left = truth.paid - truth.cancelled - pending;
    if (left <= 0) return;
    const amount = this.chance(0.4) ? undefined : Math.max(100, Math.floor(left * this.random() / 100) * 100);
    if (amount !== undefined && amount > left) return;
    const async = p.method !== "VIRTUAL_ACCOUNT" && this.chance(0.2);
    this.app.sandbox.consoleCancel({ paymentId: p.paymentId, ...(amount ? { amount } : {}), pending: async });
    this.log.push(`  console refund of ${p.paymentId} ${amount ?? "all"}${async ? " (pending)" : ""}`);
  }

  completeAsync() {
    const candidates = this.payments.flatMap((p) =>
      (this.truth(p.paymentId)?.cancellations ?? []).filter((c) => c.status === "REQUESTED").map((c) => ({
        p,
        c,
      }))
    );
    const picked = this.pick(candidates);
    if (!picked) return;
    const outcome = this.chance(0.5) ? "SUCCEEDED" : "FAILED";
    this.app.sandbox.completeCancellation({
      paymentId: picked.p.paymentId,
      cancellationId: picked.c.id,
      outcome,
    });
    this.log.push(`  PortOne completes ${picked.p.paymentId}'s cancellation ${picked.c.amount}: ${outcome}`);
  }

  webhookWeather() {
    const sandbox = this.app.sandbox;
    const roll = this.random();
    if (roll < 0.35) {
      this.webhooksDroppedFor = 1 + Math.floor(this.random() * 6);
      sandbox.setWebhookUrl(undefined);
      this.log.push(`  webhooks are lost for ${this.webhooksDroppedFor} steps`);
    } else if (roll < 0.6) {
      sandbox.injectWebhookFault({ mode: "duplicate", times: 3, copies: 2 + Math.floor(this.random() * 2) });
      this.log.push("  the next webhooks are duplicated");
    } else if (roll < 0.85) {
      sandbox.injectWebhookFault({ mode: "outOfOrder", times: 4, batchSize: 2, holdMs: 40 });
      this.log.push("  the next webhooks arrive out of order");
    } else {
      sandbox.injectWebhookFault({ mode: "delay", times: 3, delayMs: 20 + Math.floor(this.random() * 80) });
      this.log.push("  the next webhooks are delayed");
    }
  }

  async reconcile(final = false) {
    const body = final ? {} : {
      maxPayments: 1 + Math.floor(this.random() * 20),
      maxWaiting: Math.floor(this.random() * 10),
      maxEvents: Math.floor(this.random() * 20),
    };
    const weather = final ? "" : this.chance(0.3) ? this.weather("getPayment") : "";
    const result = await this.call(`reconcile ${JSON.stringify(body)}${weather}`, "reconcile", {
      token: testReconcileSecret,
      body,
    });
    return result;
  }

  async restart() {
    if (!this.restartDatabase) return;
    const mode = this.chance(0.5) ? "fast" : "immediate";
    this.log.push(`  PostgreSQL restarts (${mode}) while requests are running`);
    // requests in flight while the server goes away: each may fail (503), none may answer 500
    const inFlight = [this.confirm(), this.ourCancel(), this.reconcile()];
    await this.restartDatabase(mode);
    await Promise.all(inFlight);
  }

  // ---------------------------------------------------------------------------------------------

  async step(n: number, restartAt: number) {
    if (this.webhooksDroppedFor > 0 && --this.webhooksDroppedFor === 0) {
      this.app.sandbox.setWebhookUrl(this.webhookUrl);
      this.log.push("  webhooks flow again");
    }
    if (n === restartAt) return await this.restart();
    const actions: [number, () => unknown][] = [
      [this.payments.length < 3 ? 8 : 3, () => this.newPayment()],
      [2, () => this.confirm()],
      [1.5, () => this.deposit()],
      [0.5, () => this.expire()],
      [4, () => this.ourCancel()],
      [1, () => this.concurrentCancels()],
      [1, () => this.retryLost()],
      [1.5, () => this.consoleCancel()],
      [1, () => this.completeAsync()],
      [1, () => this.webhookWeather()],
      [1, () => this.reconcile()],
    ];
    const total = actions.reduce((sum, [weight]) => sum + weight, 0);
    let roll = this.random() * total;
    for (const [weight, action] of actions) {
      roll -= weight;
      if (roll < 0) {
        await action();
        break;
      }
    }
    this.app.sandbox.clearFaults();
  }

  /** After every step: no 500 for an existing payment; PortOne never refunded more than was paid. */
  checkStep() {
    for (const { what, result } of this.answers.splice(0)) {
      assert.notEqual(result.status, 500, `${what} answered 500: ${JSON.stringify(result.body)}`);
    }
    // every delivery so far (one PortOne per history keeps this list short), finished ones included
    for (const delivery of this.app.sandbox.deliveries()) {
      assert.notEqual(delivery.status, 500, `webhook ${delivery.type} ${delivery.webhookId} answered 500`);
    }
    const refunds = this.app.sandbox.refunds();
    for (const p of this.payments) {
      const truth = this.truth(p.paymentId)!;
      const refunded = refunds.filter((r) => r.paymentId === p.paymentId).reduce(
        (sum, r) => sum + r.amount,
        0,
      );
      assert.ok(refunded <= truth.paid, `${p.paymentId}: refunded ${refunded} > paid ${truth.paid}`);
      assert.equal(
        refunded,
        truth.cancelled,
        `${p.paymentId}: refunds ${refunded} ≠ cancelled ${truth.cancelled}`,
      );
    }
  }

  /** Lets everything settle the way it would in production, then runs reconcile to the end. */
  async settle() {
    const sandbox = this.app.sandbox;
    sandbox.clearFaults();
    sandbox.clearWebhookFaults();
    sandbox.setWebhookUrl(this.webhookUrl);
    sandbox.releaseHeldWebhooks();
    await sandbox.idle();
    // clients retry what failed with the same Idempotency-Key, as told to
    for (let i = this.lost.length; i > 0; i--) await this.retryLost();
    // and time passes: whatever is still reserved by a caller that gave up counts as abandoned
    const ids = this.payments.map((p) => p.paymentId);
    if (ids.length > 0) {
      await this.app.deps.sql`
        update public.payment_cancellations set requested_at = requested_at - interval '1 hour'
        where status = 'REQUESTED' and payment_id in ${this.app.deps.sql(ids)}`;
    }
    // Reconcile until one run did everything: read PortOne to the end, failed nowhere, and left no request
    // PortOne never received. A 503 (a PortOne call timed out on a loaded machine) is the documented answer
    // to retry on, as a scheduler would.
    let clean: CallResult | undefined;
    for (let run = 0; run < 10 && !clean; run++) {
      const result = await this.reconcile(true);
      assert.ok(
        result.status === 200 || result.status === 503,
        `final reconcile: ${JSON.stringify(result.body)}`,
      );
      const [unsent] = ids.length === 0 ? [] : await this.app.deps.sql`
        select 1 from public.payment_cancellations
        where status = 'REQUESTED' and portone_cancellation_id is null and payment_id in ${
        this.app.deps.sql(ids)
      }
        limit 1`;
      const report = result.body;
      if (
        result.status === 200 && !report.stoppedShort?.events && !report.stoppedShort?.scan &&
        report.errors.length === 0 && !unsent
      ) clean = result;
    }
    assert.ok(clean, "ten reconcile runs in a row did not finish");
    await sandbox.idle();
    this.checkStep();
  }

  async checkConverged() {
    const sql = this.app.deps.sql;
    for (const p of this.payments) {
      const truth = this.truth(p.paymentId)!;
      const [row] = await sql<
        {
          status: string;
          paid_amount: number;
          cancelled_amount: number;
          cancel_reserved_amount: number;
          order_status: string;
          paid_payment_id: string | null;
        }[]
      >`
        select p.status, p.paid_amount, p.cancelled_amount, p.cancel_reserved_amount, o.status as order_status,
               o.paid_payment_id
        from public.payments p join public.orders o on o.id = p.order_id where p.id = ${p.paymentId}`;
      assert.ok(row, `${p.paymentId} is ours`);
      const truthPaid = truth.paid > 0 || truth.cancelled > 0 ? truth.total : 0;
      assert.deepEqual(
        { status: row.status, paid: row.paid_amount, cancelled: row.cancelled_amount },
        { status: truth.status, paid: truthPaid, cancelled: truth.cancelled },
        `${p.paymentId}: our row equals PortOne's`,
      );
      const ours = await sql<
        {
          id: string;
          status: string;
          amount: number;
          requester: string;
          portone_cancellation_id: string | null;
        }[]
      >`
        select id, status, amount, requester, portone_cancellation_id from public.payment_cancellations
        where payment_id = ${p.paymentId}`;
      for (const c of truth.cancellations) {
        const mine = ours.find((o) => o.portone_cancellation_id === c.id);
        assert.ok(mine, `${p.paymentId}: PortOne's cancellation ${c.id} is recorded`);
        assert.deepEqual({ status: mine.status, amount: mine.amount }, {
          status: c.status,
          amount: c.amount,
        });
      }
      for (const o of ours) {
        if (o.portone_cancellation_id === null) {
          assert.equal(
            o.status,
            "FAILED",
            `${p.paymentId}: a request PortOne never had is settled as failed`,
          );
        } else {
          assert.ok(
            truth.cancellations.some((c) => c.id === o.portone_cancellation_id),
            "no invented refunds",
          );
        }
      }
      const reserved = ours.filter((o) => o.status === "REQUESTED").reduce((sum, o) => sum + o.amount, 0);
      assert.equal(row.cancel_reserved_amount, reserved, `${p.paymentId}: reserved = unsettled at PortOne`);

      // the order follows its paying payment
      const expectedOrder = { PAID: "paid", PARTIAL_CANCELLED: "partial_cancelled", CANCELLED: "cancelled" }[
        truth.status
      ];
      if (row.paid_payment_id === p.paymentId) {
        assert.equal(row.order_status, expectedOrder, `${p.paymentId}: the order follows its payment`);
      } else if (expectedOrder !== undefined && truthPaid > 0) {
        assert.fail(`${p.paymentId} is ${truth.status} but its order is not paid by it`);
      }

      // each real change has exactly one audit event
      const events = await sql<{ kind: string; to_status: string | null; detail: Record<string, unknown> }[]>`
        select kind, to_status, detail from public.payment_events where payment_id = ${p.paymentId} order by id`;
      const changes = events.filter((e) => e.kind === "status_changed" || e.kind === "mismatch").map((e) =>
        `${e.to_status}/${e.detail.paidAmount}/${e.detail.cancelledAmount}`
      );
      assert.equal(
        new Set(changes).size,
        changes.length,
        `${p.paymentId}: a change recorded twice: ${changes}`,
      );
      if (truth.status !== "READY") {
        assert.equal(
          changes.at(-1),
          `${truth.status}/${truthPaid}/${truth.cancelled}`,
          `${p.paymentId}: last change`,
        );
      }
      for (const o of ours) {
        const about = events.filter((e) => e.detail.cancellationId === o.id);
        const requested = about.filter((e) => e.kind === "cancel_requested").length;
        const settled = about.filter((e) =>
          e.kind === "cancel_succeeded" || e.kind === "cancel_failed"
        ).length;
        if (o.requester !== "PORTONE") assert.equal(requested, 1, `cancellation ${o.id}: one request event`);
        if (o.status === "REQUESTED") assert.equal(settled, 0, `cancellation ${o.id}: not settled yet`);
        else if (o.requester !== "PORTONE") {
          assert.equal(settled, 1, `cancellation ${o.id}: one settlement event`);
        } else assert.ok(settled <= 1, `cancellation ${o.id}: at most one settlement event`);
      }
    }
  }
}

async function runHistory(
  seed: number,
  app: TestApp,
  admin: TestUser,
  isolates: { functions: TestApp["functions"] }[],
  webhookUrl: string,
  restartDatabase: ((mode: "fast" | "immediate") => Promise<void>) | undefined,
) {
  const history = new History(seed, app, admin, isolates, webhookUrl, restartDatabase);
  const restartAt = restartDatabase
    ? Math.floor(stepsPerHistory / 3 + history.random() * stepsPerHistory / 3)
    : -1;
  try {
    for (let n = 0; n < stepsPerHistory; n++) {
      history.log.push(`step ${n}`);
      await history.step(n, restartAt);
      history.checkStep();
    }
    history.log.push("final: faults cleared, lost requests retried, reconcile to the end");
    await history.settle();
    await history.checkConverged();
  } catch (error) {
    const message = `convergence broke: CONVERGENCE_SEED=${seed} CONVERGENCE_STEPS=${stepsPerHistory}\n` +
      `history:\n${history.log.join("\n")}\n${error instanceof Error ? error.stack : String(error)}`;
    throw new Error(message);
  }
  return history;
}

Deno.test({
  name: `convergence: ${histories} random histories of ${stepsPerHistory} steps from seed ${seed0}`,
  // the webhook server and the sandbox stay up across histories
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using database = restarts ? await restartableDatabase() : undefined;
    const figures = { histories: 0, payments: 0, steps: 0, cancels: 0, restarts: 0, ms: 0 };
    const started = Date.now();
    for (let h = 0; h < histories && Date.now() - started < budgetMs; h++) {
      // a fresh PortOne per history keeps the sandbox's logs (and each step's checks) small
      await using app = await startTestApp({
        env: {
          PORTONE_TIMEOUT_MS: "600",
          ...(database ? { DATABASE_URL: database.appUrl } : {}),
        },
      });
      const webhookUrl = app.serveWebhook();
      const admin = await app.createUser({ admin: true });
      const isolates = [app.isolate(), app.isolate()];
      try {
        const history = await runHistory(
          seed0 + h,
          app,
          admin,
          isolates,
          webhookUrl,
          database ? (mode) => database.restart(mode) : undefined,
        );
        figures.histories++;
        figures.payments += history.payments.length;
        figures.steps += stepsPerHistory;
        figures.cancels += history.log.filter((line) => line.includes("→ cancel")).length;
        figures.restarts += history.log.filter((line) => line.includes("PostgreSQL restarts")).length;
        if (printFigures) say(`history ${seed0 + h}: ${history.payments.length} payments, ok`);
      } finally {
        await Promise.all(isolates.map((isolate) => isolate.close()));
      }
    }
    figures.ms = Date.now() - started;
    // a run too small to exercise anything would prove nothing
    assert.ok(figures.payments >= figures.histories * 3 && figures.histories > 0, JSON.stringify(figures));
    if (printFigures) say(`convergence figures: ${JSON.stringify(figures)}`);
  },
});
