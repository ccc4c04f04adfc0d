/**
 * Control HTTP API of the sandbox (its own port; never reachable on the PortOne listener).
 * JSON in and out; CORS is open so a browser demo page can drive it.
 *
 *   GET    /info                               urls, storeIds, channels, retry schedule (no secrets)
 *   POST   /customer/pay                       PayInput → Payment (PAID | VIRTUAL_ACCOUNT_ISSUED | FAILED)
 *   POST   /customer/expire-virtual-account    { paymentId } → Payment (later deposits are refused)
 *   POST   /console/cancel                     ConsoleCancelInput → Payment (a refund in PortOne's console)
 *   POST   /customer/open-window               PayInput → READY Payment
 *   POST   /customer/pay-pending               PayInput | {paymentId, storeId?} → PAY_PENDING Payment
 *   POST   /customer/deposit                   {paymentId, storeId?} → PAID Payment
 *   POST   /customer/fail                      {paymentId, reason?, storeId?} → FAILED Payment
 *   POST   /customer/billing-keys              IssueBillingKeyInput → {billingKey}
 *   POST   /customer/identity-verifications    CompleteIdentityVerificationInput → {identityVerificationId}
 *   POST   /customer/cancellations/complete    {paymentId, storeId?, cancellationId?, outcome} → cancellation
 *   GET    /truth/payments/{id}?storeId=       Payment (404 when unknown)
 *   GET    /truth/refunds | /truth/requests | /truth/deliveries
 *   GET    /truth/idle                         answers once no webhook delivery is pending
 *   POST   /faults   DELETE /faults            REST fault rules (RestFaultInput)
 *   POST   /webhook-faults   DELETE /webhook-faults   webhook fault rules (WebhookFaultInput)
 *   POST   /webhooks/send                      {type, data, webhookId?, timestamp?} → {webhookId}
 *   POST   /webhooks/url                       {url} (null/absent = stop sending)
 *
 * Simulation errors answer `{type, message}` with 400 (bad input), 404 (unknown) or 409 (state).
 */
import { SandboxError } from "./state.ts";
import type { Sandbox } from "./sandbox.ts";

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
  "access-control-allow-headers": "content-type",
};

export function startControlServer(
  sandbox: Sandbox,
  port: number,
): { url: string; shutdown: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    (req) => handleControl(sandbox, req),
  );
  return { url: `http://127.0.0.1:${server.addr.port}`, shutdown: () => server.shutdown() };
}

async function handleControl(sandbox: Sandbox, req: Request): Promise<Response> {
  if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS });
  const url = new URL(req.url);
  const path = url.pathname;
  try {
    const body = req.method === "POST" ? await readJson(req) : {};
    const route = `${req.method} ${path}`;
    switch (route) {
      case "GET /info":
        return reply({
          url: sandbox.url,
          controlUrl: sandbox.controlUrl,
          storeId: sandbox.storeId,
          otherStoreIds: sandbox.otherStoreIds,
          channels: sandbox.channels,
          retryScheduleMs: sandbox.retryScheduleMs(),
        });
      case "POST /customer/pay":
        return reply(sandbox.pay(body as never));
      case "POST /customer/open-window":
        return reply(sandbox.openPaymentWindow(body as never));
      case "POST /customer/pay-pending":
        return reply(
          "orderName" in body
            ? sandbox.setPayPending(body as never)
            : sandbox.setPayPending(String(body.paymentId), optional(body.storeId)),
        );
      case "POST /customer/deposit":
        return reply(sandbox.depositVirtualAccount(String(body.paymentId), optional(body.storeId)));
      case "POST /customer/fail":
        return reply(
          sandbox.failPayment(String(body.paymentId), optional(body.reason), optional(body.storeId)),
        );
      case "POST /customer/billing-keys":
        return reply({ billingKey: sandbox.issueBillingKey(body as never) });
      case "POST /customer/identity-verifications":
        return reply({ identityVerificationId: sandbox.completeIdentityVerification(body as never) });
      case "POST /customer/cancellations/complete":
        return reply(sandbox.completeCancellation(body as never) ?? null);
      case "POST /console/cancel":
        return reply(sandbox.consoleCancel(body as never));
      case "POST /customer/expire-virtual-account":
        return reply(sandbox.expireVirtualAccount(String(body.paymentId), optional(body.storeId)));
      case "GET /truth/refunds":
        return reply(sandbox.refunds());
      case "GET /truth/requests":
        return reply(sandbox.requests());
      case "GET /truth/deliveries":
        return reply(sandbox.deliveries());
      case "GET /truth/idle":
        await sandbox.idle();
        return reply({ idle: true });
      case "POST /faults":
        return reply({ id: sandbox.injectFault(body as never) });
      case "DELETE /faults":
        sandbox.clearFaults();
        return reply({});
      case "POST /webhook-faults":
        return reply({ id: sandbox.injectWebhookFault(body as never) });
      case "DELETE /webhook-faults":
        sandbox.clearWebhookFaults();
        return reply({});
      case "POST /webhooks/send":
        return reply({ webhookId: sandbox.sendWebhook(body as never).id });
      case "POST /webhooks/url":
        sandbox.setWebhookUrl(optional(body.url));
        return reply({});
    }
    const paymentMatch = /^\/truth\/payments\/([^/]+)$/.exec(path);
    if (req.method === "GET" && paymentMatch?.[1]) {
      const payment = sandbox.getPayment(
        decodeURIComponent(paymentMatch[1]),
        url.searchParams.get("storeId") ?? undefined,
      );
      return payment ? reply(payment) : reply({ type: "NOT_FOUND", message: "no such payment" }, 404);
    }
    return reply({ type: "NOT_FOUND", message: `no control route ${req.method} ${path}` }, 404);
  } catch (error) {
    if (error instanceof SandboxError) {
      const status = error.code === "NOT_FOUND" || error.code === "UNKNOWN_STORE"
        ? 404
        : error.code.startsWith("INVALID_INPUT")
        ? 400
        : 409;
      return reply({ type: error.code, message: error.message }, status);
    }
    if (error instanceof RangeError || error instanceof SyntaxError || error instanceof TypeError) {
      return reply({ type: "INVALID_INPUT", message: error.message }, 400);
    }
    return reply({ type: "INTERNAL", message: error instanceof Error ? error.message : String(error) }, 500);
  }
}

async function readJson(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (text.trim() === "") return {};
  const value: unknown = JSON.parse(text);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError("body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

function optional(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function reply(value: unknown, status = 200): Response {
  return Response.json(value, { status, headers: CORS });
}
