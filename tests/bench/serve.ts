/**
 * One HTTP server process for the bench's load figures, configured from the environment exactly as a
 * deployed function is. Prints `{"port": N}` once listening.
 *
 * Usage: deno run --allow-all tests/bench/serve.ts <hello|verify|floor|webhook>
 *
 * - `webhook`: the real function module (supabase/functions/webhook/index.ts).
 * - `verify`: only checks the delivery's signature, as the webhook does first.
 * - `floor`: what any correct webhook must do at least: verify, one GET of the payment from PortOne, and one
 *   minimal transaction (begin, one insert, commit) on the same kind of connection the functions use.
 * - `hello`: a hello-world server.
 */
// Everything is imported per mode, so the hello-world server loads nothing of ours.

type Handler = (request: Request) => Promise<Response> | Response;

const ok = () =>
  new Response(JSON.stringify({ received: true }), { headers: { "content-type": "application/json" } });

async function verified(secret: string, request: Request): Promise<{ data?: { paymentId?: string } }> {
  const { verifyWebhookSignature } = await import("../../shared/portone/gateway.ts");
  const body = await request.text();
  return await verifyWebhookSignature(secret, body, Object.fromEntries(request.headers)) as {
    data?: { paymentId?: string };
  };
}

async function handlerFor(mode: string | undefined): Promise<Handler> {
  switch (mode) {
    case "hello": {
      const module = await import("./hello.ts");
      return (request) => module.default.fetch(request);
    }
    case "webhook": {
      const module = await import("../../supabase/functions/webhook/index.ts");
      return (request) => module.default.fetch(request);
    }
    case "verify": {
      const secret = Deno.env.get("PORTONE_WEBHOOK_SECRET")!;
      return async (request) => {
        await verified(secret, request);
        return ok();
      };
    }
    case "floor": {
      const { runtimeDeps } = await import("../../shared/infra/runtime.ts");
      const deps = runtimeDeps(["webhook"]);
      const secret = deps.config.portone.webhookSecrets[0]!;
      return async (request) => {
        const webhookId = request.headers.get("webhook-id")!;
        const event = await verified(secret, request);
        const paymentId = event.data!.paymentId!;
        const payment = await deps.portone.getPayment(paymentId) as unknown as { status: string };
        await deps.sql.begin((tx) =>
          tx`
            insert into bench.floor_events (webhook_id, payment_id, status)
            values (${webhookId}, ${paymentId}, ${payment.status})`
        );
        return ok();
      };
    }
    default:
      throw new Error(`unknown mode ${mode}: hello, verify, floor or webhook`);
  }
}

const handler = await handlerFor(Deno.args[0]);
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => Deno.stdout.writeSync(new TextEncoder().encode(`${JSON.stringify({ port })}\n`)),
}, handler);
