/**
 * A running system for integration tests: the PortOne sandbox on loopback, the scratch database prepared by
 * the suite runner, and our functions' handlers bound to both through the same config parsing production
 * uses. Nothing of ours is replaced: requests go through the real HTTP wrapper, auth, SQL and SDK calls.
 */
import { readConfig } from "../../shared/infra/config.ts";
import { type AppDeps, createAppDeps } from "../../shared/infra/runtime.ts";
import { cancelHandler } from "../../shared/payments/cancel.ts";
import { confirmHandler } from "../../shared/payments/confirm.ts";
import { prepareHandler } from "../../shared/payments/prepare.ts";
import { reconcileHandler } from "../../shared/payments/reconcile.ts";
import { billingKeyHandler } from "../../shared/billing/handler.ts";
import { identityVerificationHandler } from "../../shared/identity/identity-verification.ts";
import { webhookHandler } from "../../shared/webhook/webhook.ts";
import { adminHandler } from "../../shared/operate/handler.ts";
import type { EdgeFunction } from "../../shared/infra/http.ts";
import { type Sandbox, startSandbox } from "../sandbox/sandbox.ts";
import type { SandboxOptions } from "../sandbox/sandbox.ts";
import { signAccessToken, testJwks, type TokenOptions } from "./auth.ts";
import { appDatabaseUrl } from "./test-database.ts";
import { setLogSink } from "../../shared/infra/log.ts";

/**
 * Every log line the functions write during this test process. Captured instead of printed, so test output
 * stays readable and tests can assert that nothing sensitive was logged.
 */
export const capturedLogLines: string[] = [];
setLogSink((line) => {
  capturedLogLines.push(line);
});

export interface TestAppOptions {
  readonly sandbox?: SandboxOptions;
  /** Overrides of the test environment; `undefined` removes a variable (to test production defaults). */
  readonly env?: Record<string, string | undefined>;
}

export interface TestUser {
  readonly id: string;
  readonly token: string;
}

export interface TestApp extends AsyncDisposable {
  readonly sandbox: Sandbox;
  readonly deps: AppDeps;
  readonly functions: TestFunctions;
  /** Builds another set of handlers with their own connection pool, like a second edge isolate. */
  isolate(): { deps: AppDeps; functions: TestFunctions; close(): Promise<void> };
  createUser(options?: TokenOptions): Promise<TestUser>;
  /** A product with a unique id; returns the id. */
  createProduct(
    input: { price: number; taxFree?: number; currency?: string; name?: string },
  ): Promise<string>;
  /** Creates an order as the user through the `create_order` RPC, as supabase-js would. */
  createOrder(user: TestUser, items: { productId: string; quantity: number }[]): Promise<TestOrder>;
  call(fn: keyof TestFunctions, init: CallInit): Promise<CallResult>;
  /**
   * One product, one order, `prepare`, the customer paying in the sandbox and (unless `confirm: false`)
   * `confirm` answering PAID: a paid payment the way a client app makes one. A new user unless one is given.
   */
  paidPayment(options?: PaidPaymentOptions): Promise<PaidPayment>;
  /** Serves the webhook function over HTTP on loopback and points the sandbox's deliveries at it. */
  serveWebhook(functions?: TestFunctions): string;
  close(): Promise<void>;
}

export interface PaidPaymentOptions {
  readonly user?: TestUser;
  readonly price?: number;
  readonly taxFree?: number;
  readonly method?: "CARD" | "VIRTUAL_ACCOUNT";
  readonly asyncCancel?: boolean;
  readonly confirm?: boolean;
}

export interface PaidPayment {
  readonly user: TestUser;
  readonly paymentId: string;
  readonly orderId: string;
}

export interface TestOrder {
  readonly id: string;
  readonly orderName: string;
  readonly totalAmount: number;
  readonly taxFreeAmount: number;
  readonly currency: string;
}

export interface CallResult {
  readonly status: number;
  // deno-lint-ignore no-explicit-any -- tests read response fields freely and assert on them
  readonly body: any;
  readonly headers: Headers;
}

export interface CallInit {
  readonly user?: TestUser | null;
  readonly token?: string;
  readonly body?: unknown;
  readonly rawBody?: string;
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly path?: string;
}

export const testReconcileSecret = "test-reconcile-secret-0123456789abcdef";

/** Two data-encryption keys, the current one first: values sealed under either open. */
export const testDataEncryptionKeys = `test-2:${btoa("t".repeat(32))},test-1:${btoa("o".repeat(32))}`;

export function testEnv(
  sandbox: Sandbox,
  extra: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return {
    PORTONE_API_SECRET: sandbox.apiSecret,
    PORTONE_STORE_ID: sandbox.storeId,
    PORTONE_CHANNEL_KEY: sandbox.channels.test.key,
    PORTONE_CHANNEL_KEYS: JSON.stringify({ EASY_PAY: sandbox.channels.live.key }),
    PORTONE_WEBHOOK_SECRET: sandbox.webhookSecret,
    PORTONE_API_BASE: sandbox.url,
    PORTONE_TIMEOUT_MS: "2000",
    // the sandbox's default channel is a TEST channel; production leaves this unset (live)
    PORTONE_STORE_MODE: "test",
    DATA_ENCRYPTION_KEYS: testDataEncryptionKeys,
    SUPABASE_URL: "http://127.0.0.1:9",
    SUPABASE_ANON_KEY: "anon-key-for-tests",
    SUPABASE_JWKS: testJwks,
    DATABASE_URL: appDatabaseUrl(),
    // production's one connection per isolate: a query that waited on its own open transaction would hang
    DB_POOL_MAX: "1",
    // production's default on the platform's direct connection (DATABASE_URL alone would turn it off)
    DB_PREPARE: "true",
    IDENTITY_CI_PEPPER: "test-pepper-0123456789abcdef0123456789",
    RECONCILE_SECRET: testReconcileSecret,
    ...extra,
  };
}

/** Every function's handler bound to one set of dependencies; add a line here for each new function. */
function bindFunctions(deps: AppDeps) {
  return {
    prepare: prepareHandler(deps),
    confirm: confirmHandler(deps),
    cancel: cancelHandler(deps),
    "billing-key": billingKeyHandler(deps),
    "identity-verification": identityVerificationHandler(deps),
    webhook: webhookHandler(deps),
    reconcile: reconcileHandler(deps),
    admin: adminHandler(deps),
  } satisfies Record<string, EdgeFunction>;
}

export type TestFunctions = ReturnType<typeof bindFunctions>;

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const sandbox = await startSandbox({ retryTimeFactor: 1e-5, ...options.sandbox });
  const config = readConfig(testEnv(sandbox, options.env));
  const deps = createAppDeps(config);
  const functions = bindFunctions(deps);
  const sql = deps.sql;
  const servers: Deno.HttpServer[] = [];

  const app: TestApp = {
    sandbox,
    deps,
    functions,
    isolate() {
      const isolated = createAppDeps(config);
      return { deps: isolated, functions: bindFunctions(isolated), close: () => isolated.sql.end() };
    },
    async createUser(tokenOptions = {}) {
      const id = crypto.randomUUID();
      await sql`
        insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
        values (${id}, 'authenticated', 'authenticated', ${`${id}@test.local`}, '{}', '{}', now(), now())`;
      return { id, token: await signAccessToken(id, tokenOptions) };
    },
    async createProduct({ price, taxFree = 0, currency = "KRW", name }) {
      const id = `p-${crypto.randomUUID().slice(0, 18)}`;
      await sql`
        insert into public.products (id, name, unit_price, tax_free_price, currency)
        values (${id}, ${name ?? `상품 ${id.slice(2, 8)}`}, ${price}, ${taxFree}, ${currency})`;
      return id;
    },
    async createOrder(user, items) {
      const [order] = await sql.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${
          JSON.stringify({ sub: user.id, role: "authenticated" })
        }, true)`;
        await tx`set local role authenticated`;
        return await tx<
          {
            id: string;
            order_name: string;
            total_amount: number;
            tax_free_amount: number;
            currency: string;
          }[]
        >`
          select id, order_name, total_amount, tax_free_amount, currency
          from public.create_order(${
          tx.json(items.map((i) => ({ product_id: i.productId, quantity: i.quantity })))
        })`;
      });
      return {
        id: order!.id,
        orderName: order!.order_name,
        totalAmount: order!.total_amount,
        taxFreeAmount: order!.tax_free_amount,
        currency: order!.currency,
      };
    },
    async call(fn, init) {
      return await callFunction(functions[fn], fn, init);
    },
    async paidPayment(options = {}) {
      const user = options.user ?? await app.createUser();
      const product = await app.createProduct({
        price: options.price ?? 10000,
        taxFree: options.taxFree ?? 0,
      });
      const order = await app.createOrder(user, [{ productId: product, quantity: 1 }]);
      const { body: checkout } = await app.call("prepare", { user, body: { orderId: order.id } });
      app.sandbox.pay({
        ...checkout,
        channel: "TEST",
        method: options.method ?? "CARD",
        customerId: user.id,
        asyncCancel: options.asyncCancel ?? false,
      });
      if (options.method === "VIRTUAL_ACCOUNT") app.sandbox.depositVirtualAccount(checkout.paymentId);
      if (options.confirm !== false) {
        const confirmed = await app.call("confirm", { user, body: { paymentId: checkout.paymentId } });
        if (confirmed.body.status !== "PAID") {
          throw new Error(`confirm answered ${confirmed.status} ${JSON.stringify(confirmed.body)}, not PAID`);
        }
      }
      return { user, paymentId: checkout.paymentId, orderId: order.id };
    },
    serveWebhook(target = functions) {
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        (request) => target.webhook.fetch(request),
      );
      servers.push(server);
      const url = `http://127.0.0.1:${server.addr.port}/functions/v1/webhook`;
      sandbox.setWebhookUrl(url);
      return url;
    },
    async close() {
      await sandbox.close();
      await Promise.all(servers.map((server) => server.shutdown()));
      await sql.end();
    },
    [Symbol.asyncDispose]() {
      return app.close();
    },
  };
  return app;
}

/** Calls a handler the way supabase-js `functions.invoke` reaches it: a JSON POST with a bearer token. */
export async function callFunction(
  fn: EdgeFunction,
  name: string,
  init: CallInit,
): Promise<CallResult> {
  const headers: Record<string, string> = { ...init.headers };
  const token = init.token ?? init.user?.token;
  if (token) headers.authorization = `Bearer ${token}`;
  const body = init.rawBody ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
    headers["content-type"] = "application/json";
  }
  const response = await fn.fetch(
    new Request(`http://127.0.0.1/functions/v1/${name}${init.path ?? ""}`, {
      method: init.method ?? "POST",
      headers,
      body,
    }),
  );
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
}
