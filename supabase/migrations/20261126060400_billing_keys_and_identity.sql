-- Purpose: saved cards (PortOne billing keys) and Danal identity verifications. The secret parts (the
-- billing key itself; CI, DI and personal details) are stored in columns no API role is granted, so a
-- client reading its own row through RLS gets only the masked, non-sensitive columns.
-- Touches: tables billing_keys, identity_verifications; payments.billing_key_id.

-- billing_keys ---------------------------------------------------------------------------------------
create table public.billing_keys (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete restrict,
  -- the key charges the card: readable by the service role only (no column grant to API roles)
  billing_key text not null unique check (char_length(billing_key) between 1 and 256),
  store_id text not null,
  status text not null default 'ISSUED' check (status in ('ISSUED', 'DELETED')),
  pg_provider text,
  card_issuer text,
  card_brand text,
  card_type text,
  -- at most BIN + last four digits may be kept, whatever the separators ('4111-1111-1111-1111' is refused)
  card_number_masked text check (char_length(regexp_replace(card_number_masked, '[^0-9]', '', 'g')) <= 10),
  card_name text,
  issued_at timestamptz,
  deleted_at timestamptz,
  synced_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint billing_keys_deleted_at check ((status = 'DELETED') = (deleted_at is not null))
);
comment on table public.billing_keys is
  'Saved cards. Clients read the masked columns of their own keys; billing_key is service-only.';
create index billing_keys_user_id_idx on public.billing_keys (user_id);

alter table public.billing_keys enable row level security;
revoke all on table public.billing_keys from anon, authenticated, service_role;
grant select (
  id, user_id, store_id, status, pg_provider, card_issuer, card_brand, card_type, card_number_masked,
  card_name, issued_at, deleted_at, created_at, updated_at
) on table public.billing_keys to authenticated;
grant select, insert, update, delete on table public.billing_keys to service_role;

create policy "Users can read their own billing keys"
on public.billing_keys for select
to authenticated
using ((select auth.uid()) = user_id);

alter table public.payments
  add column billing_key_id uuid references public.billing_keys (id) on delete restrict;
create index payments_billing_key_id_idx on public.payments (billing_key_id) where billing_key_id is not null;

-- identity_verifications -----------------------------------------------------------------------------
create table public.identity_verifications (
  id uuid primary key default gen_random_uuid(),
  -- one verified person per account, and (ci_hash) one account per person
  user_id uuid not null unique references auth.users (id) on delete cascade,
  portone_identity_verification_id text not null unique,
  store_id text not null,
  -- HMAC-SHA256(pepper, CI), hex; the raw CI is never stored
  ci_hash text not null unique check (ci_hash ~ '^[0-9a-f]{64}$'),
  di text,
  name text not null check (char_length(name) between 1 and 100),
  name_masked text not null,
  birth_date date,
  gender text check (gender in ('MALE', 'FEMALE', 'OTHER')),
  phone_number text check (phone_number ~ '^[0-9]{9,15}$'),
  operator text check (operator in ('SKT', 'KT', 'LGU', 'SKT_MVNO', 'KT_MVNO', 'LGU_MVNO')),
  is_foreigner boolean,
  verified_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.identity_verifications is
  'Verified identities (Danal via PortOne). Clients read status-like columns only; CI/DI and personal data are service-only.';

alter table public.identity_verifications enable row level security;
revoke all on table public.identity_verifications from anon, authenticated, service_role;
grant select (id, user_id, store_id, name_masked, operator, is_foreigner, verified_at, created_at, updated_at)
  on table public.identity_verifications to authenticated;
grant select, insert, update, delete on table public.identity_verifications to service_role;

create policy "Users can read their own identity verification"
on public.identity_verifications for select
to authenticated
using ((select auth.uid()) = user_id);
