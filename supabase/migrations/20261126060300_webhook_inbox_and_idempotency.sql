-- Purpose: the exactly-once webhook inbox keyed by PortOne's own webhook-id header, and the store for
-- our functions' Idempotency-Key replies. Both are service-only: no API role can see or touch them.
-- Touches: tables webhook_logs, idempotency_keys.

create table public.webhook_logs (
  id bigint generated always as identity primary key,
  -- PortOne's `webhook-id` header, stable across its retries; never a value we make up
  webhook_id text not null unique check (char_length(webhook_id) between 1 and 256),
  webhook_timestamp timestamptz,
  event_type text,
  payment_id text,
  store_id text,
  payload jsonb not null,
  payload_sha256 text not null check (payload_sha256 ~ '^[0-9a-f]{64}$'),
  -- a redelivery under the same id whose body hashes differently is recorded, never silently merged
  payload_conflict boolean not null default false,
  status text not null default 'received'
    check (status in ('received', 'processing', 'processed', 'failed', 'ignored')),
  -- deliveries received under this id (PortOne's retries and duplicates)
  attempts integer not null default 1 check (attempts >= 1),
  -- whoever holds the current token may process the row until lease_expires_at; a crashed holder's
  -- lease runs out and the next delivery takes over
  lease_token uuid,
  lease_expires_at timestamptz,
  last_error text,
  received_at timestamptz not null default now(),
  last_received_at timestamptz not null default now(),
  processed_at timestamptz,
  processing_ms integer check (processing_ms >= 0)
);
comment on table public.webhook_logs is
  'Inbox of verified PortOne webhook deliveries, one row per webhook-id, with a processing lease.';
create index webhook_logs_payment_id_idx on public.webhook_logs (payment_id);
create index webhook_logs_received_at_idx on public.webhook_logs (received_at);
create index webhook_logs_unfinished_idx on public.webhook_logs (status, lease_expires_at)
  where status in ('received', 'processing', 'failed');

-- Retention: verified deliveries are kept 30 days for audit, then pruned (schedule with pg_cron, e.g.
-- `select cron.schedule('prune-webhook-logs', '17 3 * * *', $$select private.prune_webhook_logs()$$)`).
-- Unfinished rows are never pruned: they still need processing.
create or replace function private.prune_webhook_logs(keep interval default interval '30 days')
returns bigint
language sql
set search_path = ''
as $$
  with pruned as (
    delete from public.webhook_logs
    where status in ('processed', 'ignored') and received_at < now() - keep
    returning 1
  )
  select count(*) from pruned
$$;
comment on function private.prune_webhook_logs(interval) is 'Deletes finished webhook_logs rows older than keep.';

alter table public.webhook_logs enable row level security;
revoke all on table public.webhook_logs from anon, authenticated, service_role;
grant select, insert, update, delete on table public.webhook_logs to service_role;
revoke all on sequence public.webhook_logs_id_seq from anon, authenticated, service_role;

create table public.idempotency_keys (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  route text not null check (char_length(route) between 1 and 100),
  key text not null check (char_length(key) between 1 and 255),
  -- sha-256 of the canonical request; the same key with another request is refused
  request_hash text not null check (request_hash ~ '^[0-9a-f]{64}$'),
  status text not null default 'in_progress' check (status in ('in_progress', 'completed')),
  -- an in-progress claim whose owner died is taken over after this moment
  locked_until timestamptz,
  response_status integer check (response_status between 100 and 599),
  response_body jsonb,
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  expires_at timestamptz not null default now() + interval '24 hours',
  unique (user_id, route, key),
  constraint idempotency_keys_completed check ((status = 'completed') = (response_status is not null))
);
comment on table public.idempotency_keys is
  'Replies of our own functions per (user, route, Idempotency-Key), replayed for retries within 24 hours.';
create index idempotency_keys_expires_at_idx on public.idempotency_keys (expires_at);

alter table public.idempotency_keys enable row level security;
revoke all on table public.idempotency_keys from anon, authenticated, service_role;
grant select, insert, update, delete on table public.idempotency_keys to service_role;
revoke all on sequence public.idempotency_keys_id_seq from anon, authenticated, service_role;
