// The demo checkout, written the way a merchant's page would use supabase-js: products and orders through
// the REST API, payments through Edge Functions with our typed client (shared/client/, bundled for the
// browser by the stack). The only dev-stack specifics are signing in (there is no Supabase Auth locally,
// so /devstack/v1/token mints a user) and the payment window, which is the sandbox's customer simulation
// instead of PortOne's browser SDK.
// (imported by URL at run time: the bundle exists only as the stack's answer, not as a file)
const { createPaymentsClient } = await import(new URL("/devstack/payments-client.js", location.href).href);

const $ = (id) => document.getElementById(id);
const won = (n) => `${Number(n).toLocaleString("ko-KR")}원`;

function showError(message) {
  $("error").textContent = message;
  document.body.dataset.state = "error";
}

async function main() {
  const config = await (await fetch("/devstack/v1/config")).json();
  const session = await (await fetch("/devstack/v1/token", { method: "POST", body: "{}" })).json();
  $("user").textContent = session.userId;
  const client = supabase.createClient(config.supabaseUrl, config.anonKey, {
    accessToken: () => Promise.resolve(session.accessToken),
  });

  const { data: products, error } = await client.from("products").select("id,name,unit_price,currency").order(
    "unit_price",
  );
  if (error) return showError(`products: ${error.message}`);
  $("products").replaceChildren(...products.map((product) => {
    const li = document.createElement("li");
    li.innerHTML = `<span></span><button class="primary">Buy</button>`;
    li.querySelector("span").textContent = `${product.name} · ${won(product.unit_price)}`;
    const button = li.querySelector("button");
    button.dataset.product = product.id;
    button.addEventListener(
      "click",
      () => checkout(client, createPaymentsClient(client), config, session, product),
    );
    return li;
  }));
  document.body.dataset.state = "ready";
}

async function checkout(client, payments, config, session, product) {
  $("error").textContent = "";
  const { data: order, error } = await client.rpc("create_order", {
    items: [{ product_id: product.id, quantity: 1 }],
  });
  if (error) return showError(`create_order: ${error.message}`);

  const prepared = await payments.prepare({ orderId: order.id });
  if (!prepared.ok) return showError(`prepare: ${prepared.error.code}: ${prepared.error.message}`);
  const checkout = prepared.data;
  $("order-name").textContent = checkout.orderName;
  $("amount").textContent = won(checkout.totalAmount);
  $("payment-id").textContent = checkout.paymentId;
  $("window").hidden = false;
  document.body.dataset.state = "prepared";

  $("pay").onclick = async () => {
    if (!config.sandbox) return showError("The payment window simulation needs the PortOne sandbox.");
    $("pay").disabled = true;
    // The sandbox's control API stands in for the customer completing PortOne's payment window.
    const paid = await fetch(`${config.sandbox.controlUrl}/customer/pay`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        paymentId: checkout.paymentId,
        storeId: checkout.storeId,
        channel: "TEST",
        method: "CARD",
        orderName: checkout.orderName,
        totalAmount: checkout.totalAmount,
        taxFreeAmount: checkout.taxFreeAmount,
        currency: checkout.currency,
        customerId: session.userId,
      }),
    });
    if (!paid.ok) return showError(`payment window: ${(await paid.json()).message}`);

    const confirmed = await payments.confirm({ paymentId: checkout.paymentId });
    if (!confirmed.ok) return showError(`confirm: ${confirmed.error.code}: ${confirmed.error.message}`);
    $("payment-status").textContent = confirmed.data.status;
    await showOrderStatus(client, order.id);
    $("result").hidden = false;
    document.body.dataset.state = "confirmed";
  };

  $("cancel").onclick = async () => {
    $("cancel").disabled = true;
    // Customers may not cancel (CUSTOMER_CANCEL_POLICY=deny by default): the merchant's staff does, as an
    // admin user (app_metadata.payments_admin), here with a dev token.
    const merchant = await (await fetch("/devstack/v1/token", {
      method: "POST",
      body: JSON.stringify({ userId: "00000000-0000-4000-8000-00000000ad01", admin: true }),
    })).json();
    const staff = createPaymentsClient(supabase.createClient(config.supabaseUrl, config.anonKey, {
      accessToken: () => Promise.resolve(merchant.accessToken),
    }));
    // the client sends one Idempotency-Key per call and resends it on a transient failure, so a retried
    // cancellation never refunds twice
    const cancelled = await staff.cancel({ paymentId: checkout.paymentId, reason: "demo checkout" });
    if (!cancelled.ok) return showError(`cancel: ${cancelled.error.code}: ${cancelled.error.message}`);
    $("cancel-result").textContent = `refunded ${won(cancelled.data.cancelledAmount)}`;
    $("payment-status").textContent = cancelled.data.status;
    await showOrderStatus(client, order.id);
    document.body.dataset.state = "cancelled";
  };
}

/** The order as its owner reads it (RLS) through the REST API, after the function has answered. */
async function showOrderStatus(client, orderId) {
  const { data: orders, error } = await client.from("orders").select("status").eq("id", orderId);
  if (error) throw new Error(`orders: ${error.message}`);
  $("order-status").textContent = orders[0]?.status ?? "?";
}

main().catch((error) => showError(String(error?.message ?? error)));
