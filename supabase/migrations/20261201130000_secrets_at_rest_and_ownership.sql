-- Purpose: secrets stay secret at rest, and identity verifications are bound to the account they were
-- issued to.
--   * billing_keys.billing_key now holds an AES-256-GCM sealed value (sealed by the functions under
--     DATA_ENCRYPTION_KEYS); lookups by key go through billing_key_sha256. Rows stored before this migration
--     still hold the plain key: the functions re-seal such a row the first time they use it.
--   * identity_verifications keeps DI and the personal details only sealed, in personal_data; the plain
--     columns stay for rows written before this migration and are left null from now on.
--   * service_role (reachable through the REST API with the service key) loses select on every sensitive
--     column: the functions connect as postgres and never need it.
--   * identity_verification_requests: the ids the server issued, each to one user.
--   * payments.billing_channel_key: one paymentId per order serves both ways to pay (see below).
--   * payment_cancellations: customers no longer read requested_by (an admin's user id) nor the
--     Idempotency-Key we sent to PortOne.
-- Touches: billing_keys, identity_verifications, identity_verification_requests (new), payment_cancellations.

-- billing_keys ---------------------------------------------------------------------------------------
alter table public.billing_keys
  add column billing_key_sha256 text check (billing_key_sha256 ~ '^[0-9a-f]{64}$'),
  -- the channel PortOne issued the key through; charges with the key must report this channel
  add column channel_key text check (char_length(channel_key) between 1 and 200);
-- A billing key is a random secret issued by PortOne, so its plain SHA-256 can be neither inverted nor
-- matched against keys known elsewhere; it only finds the row for a key PortOne names (webhooks).
update public.billing_keys
set billing_key_sha256 = encode(sha256(convert_to(billing_key, 'UTF8')), 'hex')
where billing_key_sha256 is null;
-- A row inserted with a plain key (by hand, or by code from before this migration during a rolling deploy)
-- gets its lookup hash; the functions always send the hash of the key they seal.
create function private.fill_billing_key_sha256()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if new.billing_key_sha256 is null then
    new.billing_key_sha256 := encode(sha256(convert_to(new.billing_key, 'UTF8')), 'hex');
  end if;
  return new;
end;
$$;
revoke all on function private.fill_billing_key_sha256() from public, anon, authenticated, service_role;

create trigger billing_keys_fill_sha256
before insert on public.billing_keys
for each row execute function private.fill_billing_key_sha256();

alter table public.billing_keys
  alter column billing_key_sha256 set not null,
  add constraint billing_keys_billing_key_sha256_key unique (billing_key_sha256),
  -- a sealed value (v1.<key id>.<iv>.<ciphertext>) is longer than a plain key
  drop constraint billing_keys_billing_key_check,
  add constraint billing_keys_billing_key_check check (char_length(billing_key) between 1 and 1024);
comment on column public.billing_keys.billing_key is
  'The billing key, sealed with AES-256-GCM by the functions (plain only in rows not used since 20261201130000).';

revoke select on table public.billing_keys from service_role;
grant select (
  id, user_id, store_id, status, pg_provider, card_issuer, card_brand, card_type, card_number_masked,
  card_name, issued_at, deleted_at, synced_at, created_at, updated_at, channel_key
) on table public.billing_keys to service_role;

-- identity_verifications -----------------------------------------------------------------------------
alter table public.identity_verifications
  -- sealed JSON of di, name, birthDate, gender, phoneNumber
  add column personal_data text check (char_length(personal_data) between 1 and 4096),
  alter column name drop not null;

revoke select on table public.identity_verifications from service_role;
grant select (
  id, user_id, portone_identity_verification_id, store_id, name_masked, operator, is_foreigner, verified_at,
  created_at, updated_at
) on table public.identity_verifications to service_role;

-- identity_verification_requests ---------------------------------------------------------------------
create table public.identity_verification_requests (
  -- the identityVerificationId the server issued; only user_id may complete it
  id text primary key check (id ~ '^idv_[0-9a-f]{32}$'),
  user_id uuid not null references auth.users (id) on delete cascade,
  store_id text not null,
  created_at timestamptz not null default now()
);
comment on table public.identity_verification_requests is
  'Identity verification ids issued by the identity-verification function, each to one user.';
create index identity_verification_requests_user_id_idx on public.identity_verification_requests (user_id);

alter table public.identity_verification_requests enable row level security;
revoke all on table public.identity_verification_requests from anon, authenticated, service_role;
grant select, insert, delete on table public.identity_verification_requests to service_role;

-- payments -------------------------------------------------------------------------------------------
-- A saved-card charge takes over the order's open browser attempt (same paymentId), so PortOne, which holds
-- at most one payment per paymentId, lets only one of the two ways to pay succeed. An attempt may then be paid
-- through the channel prepare issued (channel_key) or the saved card's channel (billing_channel_key).
alter table public.payments
  add column billing_channel_key text check (char_length(billing_channel_key) between 1 and 200);

-- payment_cancellations ------------------------------------------------------------------------------
revoke select on table public.payment_cancellations from authenticated;
grant select (
  id, payment_id, status, amount, tax_free_amount, reason, requester, portone_cancellation_id,
  pg_cancellation_id, current_cancellable_amount, refund_account_masked, failure_reason, requested_at,
  settled_at, updated_at
) on table public.payment_cancellations to authenticated;
