/**
 * Type-level tests of the typed client, checked by `deno task check` (never run): each `@ts-expect-error`
 * line must be a type error, or the check fails ("unused directive"). So a client call with a wrong
 * field or an unknown error code cannot compile, and a supabase-js client typed with the generated
 * `Database` is what the client takes.
 */
import { createClient } from "../support/deps.ts";
import { createPaymentsClient, type Database } from "../../shared/client/mod.ts";

export async function typeChecksOnly(): Promise<void> {
  const supabase = createClient<Database>("http://127.0.0.1:54321", "anon-key");
  const payments = createPaymentsClient(supabase);

  // a correct call compiles, and its result narrows on `ok`
  const prepared = await payments.prepare({ orderId: crypto.randomUUID(), payMethod: "CARD" });
  if (prepared.ok) {
    const amount: number = prepared.data.totalAmount;
    // @ts-expect-error -- the response has no `amount` field
    prepared.data.amount;
    void amount;
  } else {
    // @ts-expect-error -- only the failure arm has `error`; `data` is absent here
    prepared.data;
    switch (prepared.error.code) {
      case "order_not_payable":
      case "payment_in_progress":
      case "network_error":
        break;
      // @ts-expect-error -- prepare never answers a cancel code
      case "cancel_amount_exceeds_cancellable":
        break;
    }
  }

  // @ts-expect-error -- wrong field: prepare takes `orderId`, not `order_id`
  await payments.prepare({ order_id: crypto.randomUUID() });
  // @ts-expect-error -- wrong type: amounts are integers in minor units, not strings
  await payments.cancel({ paymentId: "pay_0123456789abcdef", reason: "x", amount: "1000" });
  // @ts-expect-error -- missing required field `reason`
  await payments.cancel({ paymentId: "pay_0123456789abcdef" });
  // @ts-expect-error -- payMethod is a closed set
  await payments.prepare({ orderId: crypto.randomUUID(), payMethod: "BITCOIN" });
  await payments.cancel({
    paymentId: "pay_0123456789abcdef",
    reason: "refund to a bank we do not know",
    // @ts-expect-error -- an unknown bank code in the refund account
    refundAccount: { bank: "NOPE", number: "1234567", holderName: "h" },
  });

  const cancelled = await payments.cancel({ paymentId: "pay_0123456789abcdef", reason: "customer asked" });
  if (!cancelled.ok) {
    const retryKey: string | undefined = cancelled.idempotencyKey;
    void retryKey;
    // the cancel codes are there
    if (cancelled.error.code === "cancel_amount_exceeds_cancellable") return;
    // @ts-expect-error -- not an error code of ours at all
    if (cancelled.error.code === "cancel_amount_too_big") return;
  }

  // @ts-expect-error -- confirm takes no Idempotency-Key options (it is naturally idempotent)
  await payments.confirm({ paymentId: "pay_0123456789abcdef" }, { idempotencyKey: "k" });

  const identity = await payments.identity.status();
  if (identity.ok && identity.data.verified) {
    const masked: string = identity.data.nameMasked;
    void masked;
  } else if (identity.ok) {
    // @ts-expect-error -- an unverified status has no name
    identity.data.nameMasked;
  }

  // the generated Database types flow through supabase-js: `rpc("create_order")` is typed
  const { data: order } = await supabase.rpc("create_order", { items: [] });
  if (order) {
    const total: number = order.total_amount;
    void total;
  }
  // @ts-expect-error -- no such database function
  await supabase.rpc("create_orders", { items: [] });
}
