/**
 * What each operation costs at the database wire: the functions' real handlers, bound to a connection that
 * goes through the counting proxy, each operation run once to warm the connection (and, with prepared
 * statements, the statement cache) and then once more counted — the steady state of a warm isolate.
 */
import { readConfig } from "../../shared/infra/config.ts";
import { createAppDeps } from "../../shared/infra/runtime.ts";
import type { EdgeFunction } from "../../shared/infra/http.ts";
import { cancelHandler } from "../../shared/payments/cancel.ts";
import { confirmHandler } from "../../shared/payments/confirm.ts";
import { prepareHandler } from "../../shared/payments/prepare.ts";
import { billingKeyHandler } from "../../shared/billing/handler.ts";
import { webhookHandler } from "../../shared/webhook/webhook.ts";
import { callFunction, type CallInit, type CallResult, type TestApp } from "../support/app.ts";
import { StandardWebhook } from "../support/deps.ts";
import type { PgProxy, WireCounts } from "./pg-proxy.ts";
import { functionEnv, signedDelivery } from "./support.ts";

export const operations = [
  "prepare",
  "prepare + Idempotency-Key",
  "confirm",
  "webhook (applies)",
  "webhook (already in sync)",
  "partial cancel + Idempotency-Key",
  "billing-key pay + Idempotency-Key",
] as const;
export type Operation = (typeof operations)[number];

/** Round-trip targets of issue #14. */
export const roundTripTargets: Partial<Record<Operation, number>> = {
  "prepare": 4,
  "prepare + Idempotency-Key": 4,
  "confirm": 3,
  "webhook (applies)": 4,
  "webhook (already in sync)": 4,
  "partial cancel + Idempotency-Key": 8,
  "billing-key pay + Idempotency-Key": 8,
};

export interface OperationCounts {
  /** A warm isolate: its connection open and every statement already prepared. */
  readonly warm: Record<Operation, WireCounts>;
  /** A new isolate's first request: a new connection (loopback, no TLS or password) and no statement cache. */
  readonly cold: Record<Operation, WireCounts>;
}

export interface OperationCounter {
  /** Runs every operation three times: to warm up, counted warm, and counted on a new connection each. */
  countAll(): Promise<OperationCounts>;
  /** One more confirm through the same connection, counted (used after an idle spell). */
  countConfirmAgain(): Promise<WireCounts>;
  close(): Promise<void>;
}

export async function operationCounter(app: TestApp, proxy: PgProxy): Promise<OperationCounter> {
  const deps = createAppDeps(readConfig(functionEnv(app.sandbox, proxy.url)));
  const fns = {
    prepare: prepareHandler(deps),
    confirm: confirmHandler(deps),
    cancel: cancelHandler(deps),
    "billing-key": billingKeyHandler(deps),
    webhook: webhookHandler(deps),
  } satisfies Record<string, EdgeFunction>;
  const signer = new StandardWebhook(app.sandbox.webhookSecret);
  const product = await app.createProduct({ price: 10000, name: "벤치 상품" });
  const user = await app.createUser();
  const admin = await app.createUser({ admin: true });
  let lastPaymentId = "";

  const call = (fn: keyof typeof fns, init: CallInit) => callFunction(fns[fn], fn, init);
  const deliver = async (paymentId: string): Promise<CallResult> => {
    const delivery = signedDelivery(app.sandbox, paymentId, signer);
    const response = await fns.webhook.fetch(
      new Request("http://127.0.0.1/functions/v1/webhook", {
        method: "POST",
        headers: delivery.headers,
        body: delivery.body,
      }),
    );
    return { status: response.status, body: await response.json(), headers: response.headers };
  };
  let coldConnections = false;
  const counted = async (name: string, run: () => Promise<CallResult>): Promise<[CallResult, WireCounts]> => {
    if (coldConnections) {
      proxy.dropConnections();
      // let the client see its connection close before the request
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    proxy.reset();
    const result = await run();
    const counts = proxy.counts();
    if (result.status !== 200) throw new Error(`${name}: ${result.status} ${JSON.stringify(result.body)}`);
    return [result, counts];
  };
  const key = () => `bench-${crypto.randomUUID()}`;
  const order = () => app.createOrder(user, [{ productId: product, quantity: 1 }]);
  const payAtPortOne = (
    checkout: { paymentId: string; orderName: string; totalAmount: number; currency: string },
  ) => app.sandbox.pay({ ...checkout, channel: "TEST", method: "CARD", customerId: user.id });
  const billingKeyId = (await call("billing-key", {
    user,
    body: {
      billingKey: app.sandbox.issueBillingKey({
        customerId: user.id,
        card: { number: "4330-1234-5678-9012" },
      }),
    },
  })).body.id as string;

  async function once(): Promise<Record<Operation, WireCounts>> {
    const first = await order();
    const [prepared, prepareCounts] = await counted(
      "prepare",
      () => call("prepare", { user, body: { orderId: first.id } }),
    );
    const second = await order();
    const [preparedKeyed, prepareKeyedCounts] = await counted(
      "prepare + key",
      () => call("prepare", { user, body: { orderId: second.id }, headers: { "idempotency-key": key() } }),
    );
    payAtPortOne(prepared.body);
    const [, confirmCounts] = await counted(
      "confirm",
      () => call("confirm", { user, body: { paymentId: prepared.body.paymentId } }),
    );
    payAtPortOne(preparedKeyed.body);
    const [, webhookApplied] = await counted("webhook", () => deliver(preparedKeyed.body.paymentId));
    const [, webhookInSync] = await counted("webhook again", () => deliver(preparedKeyed.body.paymentId));
    const [, cancelCounts] = await counted("partial cancel", () =>
      call("cancel", {
        user: admin,
        body: { paymentId: prepared.body.paymentId, amount: 3000, reason: "벤치 부분 취소" },
        headers: { "idempotency-key": key() },
      }));
    const third = await order();
    const [, billingCounts] = await counted("billing-key pay", () =>
      call("billing-key", {
        user,
        path: `/${billingKeyId}/pay`,
        body: { orderId: third.id },
        headers: { "idempotency-key": key() },
      }));
    lastPaymentId = prepared.body.paymentId;
    return {
      "prepare": prepareCounts,
      "prepare + Idempotency-Key": prepareKeyedCounts,
      "confirm": confirmCounts,
      "webhook (applies)": webhookApplied,
      "webhook (already in sync)": webhookInSync,
      "partial cancel + Idempotency-Key": cancelCounts,
      "billing-key pay + Idempotency-Key": billingCounts,
    };
  }

  return {
    countAll: async () => {
      await once();
      const warm = await once();
      coldConnections = true;
      try {
        return { warm, cold: await once() };
      } finally {
        coldConnections = false;
      }
    },
    countConfirmAgain: async () =>
      (await counted(
        "confirm after idle",
        () => call("confirm", { user, body: { paymentId: lastPaymentId } }),
      ))[1],
    close: () => deps.sql.end(),
  };
}
