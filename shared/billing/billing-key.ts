/**
 * `billing-key`: saved cards. The browser SDK issues a PortOne billing key; we register it only after
 * PortOne confirms it is ISSUED, for our store and for this very caller, then charge server-priced orders
 * with it and delete it on request.
 *
 * The key itself charges the card, so it never leaves the server: `billing_keys.billing_key` has no column
 * grant to any API role (see 20261126060400_billing_keys_and_identity.sql), no reply of ours contains it, and
 * no log line names it. Clients see a masked record (issuer, brand, type, last four digits).
 *
 * Routes (the gateway passes the full path, `/functions/v1/billing-key/...`):
 *   POST   /billing-key            { billingKey }                  register, idempotent
 *   GET    /billing-key                                            the caller's active keys
 *   POST   /billing-key/{id}/pay   { orderId } + Idempotency-Key   charge an order
 *   DELETE /billing-key/{id}                                       delete, idempotent
 */
import { newPaymentId } from "../infra/crypto.ts";
import { z } from "../infra/deps.ts";
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import type { Sql, TransactionSql } from "../infra/db.ts";
import { log } from "../infra/log.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import { maskDigits } from "../portone/snapshot.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { defineFunction, type EdgeFunction, json, readJson, replyJson } from "../infra/http.ts";
import { idempotencyKeyFrom, withIdempotency } from "../infra/idempotency.ts";
import { type PaymentView, syncPayment } from "../payments/sync.ts";

// ---------------------------------------------------------------------------------------------------
// Requests and views

/** PortOne billing keys are opaque; this only refuses what cannot be one (and keeps paths/queries sane). */
const billingKeySchema = z.string().regex(
  /^[\x21-\x7e]{1,256}$/,
  "must be a billing key from the browser SDK",
);

export const RegisterBillingKeyRequest = z.strictObject({ billingKey: billingKeySchema });
export type RegisterBillingKeyRequest = z.infer<typeof RegisterBillingKeyRequest>;

export const PayWithBillingKeyRequest = z.strictObject({ orderId: z.uuid() });
export type PayWithBillingKeyRequest = z.infer<typeof PayWithBillingKeyRequest>;

/** What a client may know about a saved card. */
export interface BillingKeyView {
  readonly id: string;
  readonly status: "ISSUED" | "DELETED";
  readonly pgProvider: string | null;
  readonly cardIssuer: string | null;
  readonly cardBrand: string | null;
  readonly cardType: string | null;
  readonly cardNumberMasked: string | null;
  readonly cardName: string | null;
  readonly issuedAt: string | null;
  readonly deletedAt: string | null;
  readonly createdAt: string;
}

export interface BillingPaymentResponse {
  readonly paymentId: string;
  readonly status: PaymentView["status"];
  readonly order: PaymentView["order"];
}

interface BillingKeyRow {
  id: string;
  status: "ISSUED" | "DELETED";
  pg_provider: string | null;
  card_issuer: string | null;
  card_brand: string | null;
  card_type: string | null;
  card_number_masked: string | null;
  card_name: string | null;
  issued_at: Date | null;
  deleted_at: Date | null;
  created_at: Date;
}

/** The masked columns; `billing_key` is deliberately absent so it cannot reach a reply by accident. */
const viewColumns = (sql: Sql | TransactionSql) =>
  sql`id, status, pg_provider, card_issuer, card_brand, card_type, card_number_masked, card_name, issued_at,
      deleted_at, created_at`;

function toView(row: BillingKeyRow): BillingKeyView {
  return {
    id: row.id,
    status: row.status,
    pgProvider: row.pg_provider,
    cardIssuer: row.card_issuer,
    cardBrand: row.card_brand,
    cardType: row.card_type,
    cardNumberMasked: row.card_number_masked,
    cardName: row.card_name,
    issuedAt: row.issued_at?.toISOString() ?? null,
    deletedAt: row.deleted_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
  };
}

// ---------------------------------------------------------------------------------------------------
// PortOne's BillingKeyInfo, validated (the SDK returns responses unchecked; objects stay loose because
// PortOne adds fields without notice)

const timestamp = z.iso.datetime({ offset: true });
const billingKeyInfoSchema = z.looseObject({
  status: z.string(),
  storeId: z.string(),
  customer: z.looseObject({ id: z.string().optional() }).optional(),
  channels: z.array(z.looseObject({ pgProvider: z.string().optional() })).optional(),
  methods: z.array(
    z.looseObject({
      type: z.string(),
      card: z.looseObject({
        issuer: z.string().optional(),
        brand: z.string().optional(),
        type: z.string().optional(),
        name: z.string().optional(),
        number: z.string().optional(),
      }).optional(),
    }),
  ).optional(),
  issuedAt: timestamp.optional(),
  deletedAt: timestamp.optional(),
});

interface ParsedBillingKey {
  readonly status: string;
  readonly storeId: string;
  readonly customerId: string | null;
  readonly pgProvider: string | null;
  readonly cardIssuer: string | null;
  readonly cardBrand: string | null;
  readonly cardType: string | null;
  /** Never more than the last four digits (the column allows BIN + 4, we keep less). */
  readonly cardNumberMasked: string | null;
  readonly cardName: string | null;
  readonly issuedAt: string | null;
  readonly deletedAt: string | null;
}

function parseBillingKeyInfo(raw: unknown): ParsedBillingKey {
  const info = billingKeyInfoSchema.parse(raw);
  const card = info.methods?.find((m) => m.type === "BillingKeyPaymentMethodCard")?.card;
  return {
    status: info.status,
    storeId: info.storeId,
    customerId: info.customer?.id ?? null,
    pgProvider: info.channels?.[0]?.pgProvider ?? null,
    cardIssuer: card?.issuer ?? null,
    cardBrand: card?.brand ?? null,
    cardType: card?.type ?? null,
    cardNumberMasked: maskDigits(card?.number),
    cardName: card?.name ?? null,
    issuedAt: info.issuedAt ?? null,
    deletedAt: info.status === "DELETED" ? info.deletedAt ?? new Date().toISOString() : null,
  };
}

/** getBillingKeyInfo, or null when PortOne does not know the key (for our store). */
async function fetchBillingKey(deps: AppDeps, billingKey: string): Promise<ParsedBillingKey | null> {
  try {
    return parseBillingKeyInfo(await deps.portone.getBillingKeyInfo(billingKey));
  } catch (error) {
    if (error instanceof PortOneRefusal && error.type === "BILLING_KEY_NOT_FOUND") return null;
    if (error instanceof PortOneRefusal) {
      throw new AppError("portone_error", "PortOne refused to look up the billing key", { cause: error });
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------
// Register and list

export async function registerBillingKey(
  deps: AppDeps,
  caller: Caller,
  input: RegisterBillingKeyRequest,
): Promise<BillingKeyView> {
  const info = await fetchBillingKey(deps, input.billingKey);
  // the gateway asks with our storeId, so another store's key is already "not found"; the store check is
  // kept for a PortOne answer that ever disagrees
  if (!info || info.storeId !== deps.config.portone.storeId) {
    throw new AppError("not_found", "Billing key not found");
  }
  // the browser SDK is told customer.id = the user id; a key issued to anyone else is not the caller's card
  if (info.customerId !== caller.userId) {
    throw new AppError("forbidden", "This billing key was issued to another customer");
  }
  if (info.status !== "ISSUED") {
    throw new AppError("billing_key_not_active", `The billing key is ${info.status}`);
  }

  // Registering twice refreshes the card fields and returns the same row; the `where` keeps a key that is
  // somehow already someone else's untouched (and answers 403 below).
  const [row] = await deps.sql<BillingKeyRow[]>`
    insert into public.billing_keys
      (user_id, billing_key, store_id, status, pg_provider, card_issuer, card_brand, card_type,
       card_number_masked, card_name, issued_at, synced_at)
    values
      (${caller.userId}, ${input.billingKey}, ${info.storeId}, 'ISSUED', ${info.pgProvider}, ${info.cardIssuer},
       ${info.cardBrand}, ${info.cardType}, ${info.cardNumberMasked}, ${info.cardName}, ${info.issuedAt}, now())
    on conflict (billing_key) do update set
      pg_provider = excluded.pg_provider, card_issuer = excluded.card_issuer, card_brand = excluded.card_brand,
      card_type = excluded.card_type, card_number_masked = excluded.card_number_masked,
      card_name = excluded.card_name, issued_at = excluded.issued_at, synced_at = now(), updated_at = now()
    where billing_keys.user_id = excluded.user_id
    returning ${viewColumns(deps.sql)}`;
  if (!row) throw new AppError("forbidden", "This billing key belongs to another account");
  log("info", "billing_key_registered", { billingKeyId: row.id, userId: caller.userId });
  return toView(row);
}

export async function listBillingKeys(
  deps: AppDeps,
  caller: Caller,
): Promise<{ billingKeys: BillingKeyView[] }> {
  const rows = await deps.sql<BillingKeyRow[]>`
    select ${viewColumns(deps.sql)} from public.billing_keys
    where user_id = ${caller.userId} and status = 'ISSUED'
    order by created_at, id`;
  return { billingKeys: rows.map(toView) };
}

// ---------------------------------------------------------------------------------------------------
// Sync (also called by the webhook function for BillingKey.* events)

/**
 * Re-fetches a billing key from PortOne and brings our row in line (status, deleted_at, card fields).
 * "not_ours" when we hold no such key for our store, or PortOne does not know it.
 */
export async function syncBillingKey(
  deps: AppDeps,
  billingKey: string,
): Promise<"updated" | "unchanged" | "not_ours"> {
  const [held] = await deps.sql<{ id: string }[]>`
    select id from public.billing_keys where billing_key = ${billingKey} and store_id = ${deps.config.portone.storeId}`;
  if (!held) return "not_ours";
  const info = await fetchBillingKey(deps, billingKey);
  if (!info || info.storeId !== deps.config.portone.storeId) return "not_ours";
  // a status this code does not know yet is left alone rather than guessed at
  if (info.status !== "ISSUED" && info.status !== "DELETED") {
    log("warn", "billing_key_status_unrecognized", { billingKeyId: held.id, status: info.status });
    return "unchanged";
  }
  const updated = await deps.sql`
    update public.billing_keys set
      status = ${info.status},
      -- the first deletion time is kept; PortOne never un-deletes a key
      deleted_at = case when ${info.status} = 'DELETED' then coalesce(deleted_at, ${info.deletedAt}::timestamptz) end,
      pg_provider = coalesce(${info.pgProvider}, pg_provider),
      card_issuer = coalesce(${info.cardIssuer}, card_issuer),
      card_brand = coalesce(${info.cardBrand}, card_brand),
      card_type = coalesce(${info.cardType}, card_type),
      card_number_masked = coalesce(${info.cardNumberMasked}, card_number_masked),
      card_name = coalesce(${info.cardName}, card_name),
      issued_at = coalesce(${info.issuedAt}::timestamptz, issued_at),
      synced_at = now(), updated_at = now()
    where id = ${held.id} and (
      status is distinct from ${info.status}
      or pg_provider is distinct from coalesce(${info.pgProvider}, pg_provider)
      or card_issuer is distinct from coalesce(${info.cardIssuer}, card_issuer)
      or card_brand is distinct from coalesce(${info.cardBrand}, card_brand)
      or card_type is distinct from coalesce(${info.cardType}, card_type)
      or card_number_masked is distinct from coalesce(${info.cardNumberMasked}, card_number_masked)
      or card_name is distinct from coalesce(${info.cardName}, card_name)
      or issued_at is distinct from coalesce(${info.issuedAt}::timestamptz, issued_at))
    returning id`;
  if (updated.length === 0) return "unchanged";
  log("info", "billing_key_synced", { billingKeyId: held.id, status: info.status });
  return "updated";
}

// ---------------------------------------------------------------------------------------------------
// Delete

export async function deleteSavedBillingKey(
  deps: AppDeps,
  caller: Caller,
  billingKeyId: string,
): Promise<BillingKeyView> {
  const [key] = await deps.sql<{ billing_key: string; status: string }[]>`
    select billing_key, status from public.billing_keys where id = ${billingKeyId} and user_id = ${caller.userId}`;
  if (!key) throw new AppError("not_found", "Billing key not found");

  if (key.status !== "DELETED") {
    let deletedAt: string | null = null;
    try {
      ({ deletedAt } = await deps.portone.deleteBillingKey(
        key.billing_key,
        "고객 요청으로 삭제",
        "CUSTOMER",
      ));
    } catch (error) {
      // Already deleted (e.g. in the PortOne console, or our earlier attempt whose answer was lost) is
      // exactly the state asked for; an unknown key can never charge again either.
      const gone = error instanceof PortOneRefusal &&
        (error.type === "BILLING_KEY_ALREADY_DELETED" || error.type === "BILLING_KEY_NOT_FOUND");
      if (!gone) {
        if (error instanceof PortOneRefusal) {
          throw new AppError("portone_error", "PortOne refused to delete the billing key", { cause: error });
        }
        throw error;
      }
    }
    await deps.sql`
      update public.billing_keys
      set status = 'DELETED', deleted_at = coalesce(${deletedAt}::timestamptz, now()), updated_at = now()
      where id = ${billingKeyId} and status <> 'DELETED'`;
    log("info", "billing_key_deleted", { billingKeyId, userId: caller.userId });
  }
  const [row] = await deps.sql<BillingKeyRow[]>`
    select ${viewColumns(deps.sql)} from public.billing_keys where id = ${billingKeyId}`;
  return toView(row!);
}

// ---------------------------------------------------------------------------------------------------
// Pay

interface BillingAttempt {
  paymentId: string;
  billingKey: string;
  orderName: string;
  totalAmount: number;
  taxFreeAmount: number;
  currency: string;
}

/**
 * The Idempotency-Key sent to PortOne, derived from the attempt's paymentId (which is persisted before the
 * call): any retry of the same attempt sends the same key, so PortOne replays instead of charging again.
 */
export function portoneIdempotencyKeyFor(paymentId: string): string {
  return `billing-pay-${paymentId}`;
}

/**
 * Finds or creates the attempt under the order's row lock. An open (READY) attempt of this order with this
 * key is reused, so a request retried after an outage charges the same paymentId with the same PortOne
 * Idempotency-Key. An attempt that FAILED is never reused: its PortOne key would replay the decline.
 */
async function reserveBillingAttempt(
  deps: AppDeps,
  caller: Caller,
  billingKeyId: string,
  orderId: string,
): Promise<BillingAttempt> {
  // a call still running at PortOne is bounded by our timeout; a READY attempt of another key younger than
  // this may be charging right now
  const inFlightSeconds = Math.ceil(deps.config.portone.timeoutMs / 1000) * 2 + 30;
  return await deps.sql.begin(async (tx) => {
    const [key] = await tx<{ billing_key: string; status: string; store_id: string }[]>`
      select billing_key, status, store_id from public.billing_keys
      where id = ${billingKeyId} and user_id = ${caller.userId}`;
    // someone else's key and a missing one look the same
    if (!key) throw new AppError("not_found", "Billing key not found");
    if (key.status !== "ISSUED" || key.store_id !== deps.config.portone.storeId) {
      throw new AppError("billing_key_not_active", "The billing key is deleted");
    }

    const [order] = await tx<{ status: string; order_name: string }[]>`
      select status, order_name from public.orders
      where id = ${orderId} and user_id = ${caller.userId}
      for update`;
    if (!order) throw new AppError("not_found", "Order not found");
    if (order.status !== "pending") throw new AppError("order_not_payable", `Order is ${order.status}`);

    const live = await tx<
      {
        id: string;
        status: string;
        billing_key_id: string | null;
        young: boolean;
        virtual_account_expires_at: Date | null;
      }[]
    >`
      select id, status, billing_key_id, virtual_account_expires_at,
             created_at > now() - make_interval(secs => ${inFlightSeconds}) as young
      from public.payments
      where order_id = ${orderId} and mismatch_reason is null
        and status in ('READY', 'PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED')
      order by created_at desc`;
    const blocking = live.find((p) =>
      p.status === "PAY_PENDING" ||
      (p.status === "VIRTUAL_ACCOUNT_ISSUED" &&
        (p.virtual_account_expires_at === null || p.virtual_account_expires_at.getTime() > Date.now())) ||
      (p.status === "READY" && p.billing_key_id !== null && p.billing_key_id !== billingKeyId && p.young)
    );
    // a second charge while money may still arrive through the first would risk a double payment
    if (blocking) {
      throw new AppError("payment_in_progress", `Payment ${blocking.id} for this order is in progress`);
    }
    const reusable = live.find((p) => p.status === "READY" && p.billing_key_id === billingKeyId);
    const [row] = reusable
      ? await tx<{ id: string; total_amount: number; tax_free_amount: number; currency: string }[]>`
        select id, total_amount, tax_free_amount, currency from public.payments where id = ${reusable.id}`
      : await tx<{ id: string; total_amount: number; tax_free_amount: number; currency: string }[]>`
        insert into public.payments
          (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency, billing_key_id)
        select ${newPaymentId()}, o.id, o.user_id, ${deps.config.portone.storeId}, o.total_amount,
               o.tax_free_amount, o.currency, ${billingKeyId}
        from public.orders o where o.id = ${orderId}
        returning id, total_amount, tax_free_amount, currency`;
    if (!reusable) {
      await tx`
        insert into public.payment_events (payment_id, source, kind, to_status, detail)
        values (${row!.id}, 'billing', 'created', 'READY', ${tx.json({ orderId, billingKeyId } as never)})`;
    }
    return {
      billingKey: key.billing_key,
      orderName: order.order_name,
      paymentId: row!.id,
      totalAmount: row!.total_amount,
      taxFreeAmount: row!.tax_free_amount,
      currency: row!.currency,
    };
  });
}

export async function payWithSavedBillingKey(
  deps: AppDeps,
  caller: Caller,
  billingKeyId: string,
  input: PayWithBillingKeyRequest,
): Promise<BillingPaymentResponse> {
  const attempt = await reserveBillingAttempt(deps, caller, billingKeyId, input.orderId);

  let declined: PortOneRefusal | null = null;
  try {
    await deps.portone.payWithBillingKey({
      paymentId: attempt.paymentId,
      billingKey: attempt.billingKey,
      orderName: attempt.orderName,
      amount: { total: attempt.totalAmount, taxFree: attempt.taxFreeAmount },
      currency: attempt.currency as never,
      customerId: caller.userId,
      idempotencyKey: portoneIdempotencyKeyFor(attempt.paymentId),
    });
  } catch (error) {
    if (!(error instanceof PortOneRefusal)) throw error;
    switch (error.type) {
      case "PG_PROVIDER":
        // the PG declined: PortOne holds a FAILED payment, which the sync below records
        declined = error;
        break;
      case "ALREADY_PAID":
        // an earlier try of this very attempt went through; the sync below picks it up
        break;
      case "BILLING_KEY_ALREADY_DELETED":
      case "BILLING_KEY_NOT_FOUND":
        await syncBillingKey(deps, attempt.billingKey);
        throw new AppError("billing_key_not_active", "The billing key is no longer usable");
      case "IDEMPOTENCY_OUTSTANDING_REQUEST":
        throw new AppError("request_in_progress", "A charge for this order is in progress");
      default:
        throw new AppError("portone_error", "PortOne refused the billing key payment", { cause: error });
    }
  }

  const result = await syncPayment(deps, attempt.paymentId, "billing");
  if (result.outcome === "not_ours") throw new AppError("not_found", "Payment not found");
  const payment = result.payment;
  if (declined) {
    log("info", "billing_payment_declined", {
      paymentId: attempt.paymentId,
      pgCode: declined.pgCode ?? null,
    });
    throw new AppError("payment_declined", "The card issuer declined the payment", {
      details: {
        paymentId: attempt.paymentId,
        status: payment.status,
        pgCode: declined.pgCode ?? null,
        pgMessage: declined.pgMessage ?? null,
      },
    });
  }
  if (payment.mismatchReason !== null) {
    throw new AppError("payment_mismatch", "The payment does not match the order and was not accepted", {
      details: { paymentId: payment.paymentId, status: payment.status },
    });
  }
  return { paymentId: payment.paymentId, status: payment.status, order: payment.order };
}

// ---------------------------------------------------------------------------------------------------
// HTTP

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Route =
  | { readonly kind: "collection" }
  | { readonly kind: "item"; readonly id: string }
  | { readonly kind: "pay"; readonly id: string };

/**
 * The sub-path after `/billing-key` (the platform passes the full `/functions/v1/billing-key/...` path, a
 * local server just `/billing-key/...`). Anything else, including an id that is not a UUID, is not a
 * resource of ours: 404.
 */
export function routeOf(pathname: string): Route {
  const match = /(?:^|\/)billing-key(\/.*)?$/.exec(pathname);
  if (!match) throw new AppError("not_found", "No such route");
  const segments = (match[1] ?? "").split("/").filter((s) => s.length > 0);
  if (segments.length === 0) return { kind: "collection" };
  const [id, action, ...rest] = segments;
  if (!id || !uuidPattern.test(id) || rest.length > 0) throw new AppError("not_found", "No such route");
  if (action === undefined) return { kind: "item", id: id.toLowerCase() };
  if (action === "pay") return { kind: "pay", id: id.toLowerCase() };
  throw new AppError("not_found", "No such route");
}

async function requireOwnKey(deps: AppDeps, caller: Caller, billingKeyId: string): Promise<void> {
  const [key] = await deps.sql`
    select 1 from public.billing_keys where id = ${billingKeyId} and user_id = ${caller.userId}`;
  // someone else's key and a missing one look the same
  if (!key) throw new AppError("not_found", "Billing key not found");
}

function methodNotAllowed(method: string): never {
  throw new AppError("method_not_allowed", `Method ${method} is not allowed here`);
}

/** The `billing-key` function. */
export function billingKeyHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "billing-key",
    methods: ["GET", "POST", "DELETE"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ request, url, caller }) => {
      const route = routeOf(url.pathname);
      const method = request.method;
      switch (route.kind) {
        case "collection":
          if (method === "GET") return json(await listBillingKeys(deps, caller));
          if (method === "POST") {
            return json(
              await registerBillingKey(deps, caller, await readJson(request, RegisterBillingKeyRequest)),
            );
          }
          return methodNotAllowed(method);
        case "item":
          if (method === "DELETE") return json(await deleteSavedBillingKey(deps, caller, route.id));
          return methodNotAllowed(method);
        case "pay": {
          if (method !== "POST") return methodNotAllowed(method);
          // a charge without a key could not be retried safely by the client, so the key is required
          const key = idempotencyKeyFrom(request);
          if (key === null) {
            throw new AppError("invalid_request", "An Idempotency-Key header is required to charge", {
              details: { field: "Idempotency-Key" },
            });
          }
          const input = await readJson(request, PayWithBillingKeyRequest);
          // an unknown key is refused before the Idempotency-Key is claimed, so a wrong id writes nothing
          await requireOwnKey(deps, caller, route.id);
          const scope = {
            userId: caller.userId,
            route: "billing-key-pay",
            key,
            request: { billingKeyId: route.id, ...input },
          };
          return replyJson(
            await withIdempotency(
              deps.sql,
              scope,
              () => payWithSavedBillingKey(deps, caller, route.id, input),
            ),
          );
        }
      }
    },
  });
}
