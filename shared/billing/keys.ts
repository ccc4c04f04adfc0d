/**
 * Saved cards: the browser SDK issues a PortOne billing key; we register it only after PortOne confirms it
 * is ISSUED, for our store and for this very caller, keep it in sync with PortOne, and delete it on request.
 *
 * The key itself charges the card, so it never leaves the server: `billing_keys.billing_key` holds it sealed
 * with AES-256-GCM under DATA_ENCRYPTION_KEYS (a dump or a backup alone charges nothing), no API role may
 * select it (20261201130000_secrets_at_rest_and_ownership.sql), no reply of ours contains it, and no log line
 * names it. Rows are found by the key's SHA-256. Clients see a masked record (issuer, brand, last four digits).
 */
import { sha256Hex } from "../infra/crypto.ts";
import { z } from "../infra/deps.ts";
import { responseSchema } from "../portone/response-schema.ts";
import {
  billingKeyPattern,
  type BillingKeyView,
  type RegisterBillingKeyRequest,
} from "../contract/billing-key.ts";
import { DecryptionError, isSealed, open, seal, sealedWithOlderKey } from "../infra/encryption.ts";
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import type { Sql, TransactionSql } from "../infra/db.ts";
import type { Narrowed, SqlRow } from "../infra/rows.ts";
import { log } from "../infra/log.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import { maskDigits } from "../portone/snapshot.ts";
import type { AppDeps } from "../infra/runtime.ts";

// ---------------------------------------------------------------------------------------------------
// Requests and views

/** A billing key's masked columns (viewColumns); status is a closed union held by a check constraint. */
type BillingKeyRow = Narrowed<
  Pick<
    SqlRow<"billing_keys", "issued_at" | "deleted_at" | "created_at">,
    | "id"
    | "status"
    | "pg_provider"
    | "card_issuer"
    | "card_brand"
    | "card_type"
    | "card_number_masked"
    | "card_name"
    | "issued_at"
    | "deleted_at"
    | "created_at"
  >,
  { status: "ISSUED" | "DELETED" }
>;

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

const billingKeyInfoSchema = responseSchema(() => {
  const timestamp = z.iso.datetime({ offset: true });
  return z.looseObject({
    status: z.string(),
    storeId: z.string(),
    customer: z.looseObject({ id: z.string().optional() }).optional(),
    channels: z.array(z.looseObject({ key: z.string().optional(), pgProvider: z.string().optional() }))
      .optional(),
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
});

interface ParsedBillingKey {
  readonly status: string;
  readonly storeId: string;
  readonly customerId: string | null;
  readonly pgProvider: string | null;
  readonly channelKey: string | null;
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
    channelKey: info.channels?.[0]?.key ?? null,
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
// Sealing

function dataKeys(deps: AppDeps) {
  const keys = deps.config.dataEncryptionKeys;
  if (!keys) throw new AppError("misconfigured", "Billing keys cannot be stored: no data encryption key");
  return keys;
}

/** Binds a sealed key to its column and owner: copied into another user's row, it does not open. */
const sealContext = (userId: string) => `billing_keys.billing_key:${userId}`;

export function billingKeyHash(billingKey: string): Promise<string> {
  return sha256Hex(billingKey);
}

/**
 * The plain billing key of a row, and its value re-sealed under the current key when the row needs that (it
 * was stored before encryption at rest, or sealed under a rotated-out key); null when it does not. Writes
 * nothing: the caller stores the re-sealed value.
 */
export async function openBillingKey(
  deps: AppDeps,
  row: { user_id: string; billing_key: string },
): Promise<{ plain: string; resealed: string | null }> {
  const keys = dataKeys(deps);
  const context = sealContext(row.user_id);
  let plain = row.billing_key;
  if (isSealed(row.billing_key)) {
    try {
      plain = await open(keys, row.billing_key, context);
    } catch (error) {
      // a key dropped from DATA_ENCRYPTION_KEYS too early (or a tampered row): ours to fix, not the client's
      if (error instanceof DecryptionError) {
        throw new AppError("misconfigured", "A saved card cannot be opened", { cause: error });
      }
      throw error;
    }
  }
  const stale = !isSealed(row.billing_key) || sealedWithOlderKey(keys, row.billing_key);
  return { plain, resealed: stale ? await seal(keys, plain, context) : null };
}

/**
 * The plain billing key of a row. A row stored before encryption at rest (or sealed under a rotated-out
 * key) is re-sealed under the current key on the way, inside the caller's transaction when given one.
 */
export async function revealBillingKey(
  deps: AppDeps,
  sql: Sql | TransactionSql,
  row: { id: string; user_id: string; billing_key: string },
): Promise<string> {
  const { plain, resealed } = await openBillingKey(deps, row);
  if (resealed !== null) {
    await sql`
      update public.billing_keys set billing_key = ${resealed}, updated_at = now()
      where id = ${row.id} and billing_key = ${row.billing_key}`;
  }
  return plain;
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
  // the browser SDK is told customer.id = the user id; a key issued to anyone else is not the caller's card,
  // and answers like a missing one (a 403 would confirm it exists)
  if (info.customerId !== caller.userId) throw new AppError("not_found", "Billing key not found");
  if (info.status !== "ISSUED") {
    throw new AppError("billing_key_not_active", `The billing key is ${info.status}`);
  }
  // its charges would go through that channel: one the store did not configure would pay nothing
  if (info.channelKey !== deps.config.portone.billingChannelKey) {
    throw new AppError("billing_key_not_active", "The billing key was issued through another channel");
  }

  // Registering twice refreshes the card fields and returns the same row; the `where` keeps a key that is
  // somehow already someone else's untouched (and answers 404 below).
  const sealed = await seal(dataKeys(deps), input.billingKey, sealContext(caller.userId));
  const [row] = await deps.sql<BillingKeyRow[]>`
    insert into public.billing_keys
      (user_id, billing_key, billing_key_sha256, channel_key, store_id, status, pg_provider, card_issuer,
       card_brand, card_type, card_number_masked, card_name, issued_at, synced_at)
    values
      (${caller.userId}, ${sealed}, ${await billingKeyHash(
    input.billingKey,
  )}, ${info.channelKey}, ${info.storeId},
       'ISSUED', ${info.pgProvider}, ${info.cardIssuer}, ${info.cardBrand}, ${info.cardType},
       ${info.cardNumberMasked}, ${info.cardName}, ${info.issuedAt}, now())
    on conflict (billing_key_sha256) do update set
      pg_provider = excluded.pg_provider, card_issuer = excluded.card_issuer, card_brand = excluded.card_brand,
      card_type = excluded.card_type, card_number_masked = excluded.card_number_masked,
      card_name = excluded.card_name, issued_at = excluded.issued_at, synced_at = now(), updated_at = now()
    where billing_keys.user_id = excluded.user_id
    returning ${viewColumns(deps.sql)}`;
  if (!row) throw new AppError("not_found", "Billing key not found");
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
  // a key that could not be ours (e.g. `..` or `/`) never reaches PortOne's URL path
  if (!billingKeyPattern.test(billingKey)) return "not_ours";
  const [held] = await deps.sql<{ id: string }[]>`
    select id from public.billing_keys
    where billing_key_sha256 = ${await billingKeyHash(
    billingKey,
  )} and store_id = ${deps.config.portone.storeId}`;
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
      channel_key = coalesce(${info.channelKey}, channel_key),
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
  const [key] = await deps.sql<{ id: string; user_id: string; billing_key: string; status: string }[]>`
    select id, user_id, billing_key, status from public.billing_keys
    where id = ${billingKeyId} and user_id = ${caller.userId}`;
  if (!key) throw new AppError("not_found", "Billing key not found");

  if (key.status !== "DELETED") {
    let deletedAt: string | null = null;
    try {
      ({ deletedAt } = await deps.portone.deleteBillingKey(
        await revealBillingKey(deps, deps.sql, key),
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
