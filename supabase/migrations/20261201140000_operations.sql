-- Purpose: what operators need to run the payments service: a record of reconcile runs (so "drift fixed in
-- the last run" has a definition), the alerts already sent (so each problem alerts once, not once per
-- run), the retention of expired Idempotency-Key replies, and the schedules of reconcile and both
-- retention jobs as code (pg_cron; pg_net + Vault for the HTTP call), a documented no-op where absent.
-- Touches: tables reconcile_runs, operation_alerts; indexes on idempotency_keys, payments,
-- payment_cancellations, payment_events; functions private.prune_idempotency_keys, private.vault_secret,
-- private.schedule_operations; pg_cron jobs payments-prune-webhook-logs, payments-prune-idempotency-keys,
-- payments-reconcile.

-- reconcile_runs -------------------------------------------------------------------------------------
create table public.reconcile_runs (
  id bigint generated always as identity primary key,
  -- the PortOne store the run reconciled (PORTONE_STORE_ID of the deployment that ran it)
  store_id text not null check (char_length(store_id) between 1 and 100),
  started_at timestamptz not null,
  finished_at timestamptz not null default now(),
  -- the run's report as reconcile answered it (counters only: no payment data)
  report jsonb not null,
  constraint reconcile_runs_finished_after_start check (finished_at >= started_at)
);
comment on table public.reconcile_runs is
  'One row per finished reconcile run, for the operations view (last run, drift it fixed). Service-only.';
create index reconcile_runs_store_started_idx on public.reconcile_runs (store_id, started_at desc);

alter table public.reconcile_runs enable row level security;
revoke all on table public.reconcile_runs from anon, authenticated, service_role;
grant select, insert, delete on table public.reconcile_runs to service_role;
revoke all on sequence public.reconcile_runs_id_seq from anon, authenticated, service_role;

-- operation_alerts -----------------------------------------------------------------------------------
create table public.operation_alerts (
  -- the problem's stable identity, e.g. 'webhook_failed:<webhook-id>'; one alert per key, ever
  problem_key text primary key check (char_length(problem_key) between 1 and 400),
  kind text not null check (kind in (
    'webhook_failed', 'webhook_stuck', 'webhook_unsupported', 'payment_mismatch', 'cancellation_stuck',
    'payment_waiting', 'drift_fixed'
  )),
  payment_id text,
  summary text not null check (char_length(summary) between 1 and 500),
  first_seen_at timestamptz not null default now(),
  -- a sender holds the row until then; a crashed sender's claim runs out and the next run sends it
  claimed_until timestamptz,
  -- set once the receiver accepted the alert; never sent again after that
  alerted_at timestamptz
);
comment on table public.operation_alerts is
  'Problems that were (or are being) alerted to ALERT_WEBHOOK_URL, so none is alerted twice. Service-only.';
create index operation_alerts_alerted_at_idx on public.operation_alerts (alerted_at);

alter table public.operation_alerts enable row level security;
revoke all on table public.operation_alerts from anon, authenticated, service_role;
grant select, insert, update, delete on table public.operation_alerts to service_role;

-- The timeline finds a payment's idempotent requests by the payment their answer names.
create index idempotency_keys_payment_id_idx on public.idempotency_keys ((response_body ->> 'paymentId'));

-- "Needs attention" (shared/operate/attention.ts) runs after every reconcile: these keep it proportional to
-- the problems, not to the history.
create index payments_mismatch_idx on public.payments (store_id) where mismatch_reason is not null;
create index payment_cancellations_requested_idx on public.payment_cancellations (requested_at)
  where status = 'REQUESTED';
create index payment_events_reconcile_idx on public.payment_events (created_at) where source = 'reconcile';

-- Retention of Idempotency-Key replies ---------------------------------------------------------------
-- A reply is replayed for 24 hours (expires_at); after that its key may be claimed afresh anyway
-- (shared/infra/idempotency.ts), so the row is dead weight. A claim whose request may still be running
-- (an unexpired lease) is kept whatever its age. Deletes in batches so a backlog never holds long locks.
create or replace function private.prune_idempotency_keys(batch integer default 10000)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  total bigint := 0;
  deleted bigint;
begin
  loop
    with expired as (
      select id from public.idempotency_keys
      where expires_at < now()
        and (status = 'completed' or locked_until is null or locked_until < now())
      order by expires_at
      limit batch
    ), pruned as (
      delete from public.idempotency_keys k using expired where k.id = expired.id returning 1
    )
    select count(*) into deleted from pruned;
    total := total + deleted;
    exit when deleted < batch;
  end loop;
  return total;
end;
$$;
comment on function private.prune_idempotency_keys(integer) is
  'Deletes expired idempotency_keys rows (past expires_at and not held by a live request).';

-- Schedules ------------------------------------------------------------------------------------------
-- A Vault secret by name, or a clear error naming it: a scheduled call without its URL or secret must fail
-- loudly in cron.job_run_details, not post nowhere. Dynamic SQL, so this compiles (and `db lint` passes)
-- where Vault is absent.
create or replace function private.vault_secret(secret_name text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  secret text;
begin
  if to_regclass('vault.decrypted_secrets') is null then
    raise exception 'Vault is not enabled here (needed for secret %)', secret_name using errcode = 'P0001';
  end if;
  -- built with format(): plpgsql_check would otherwise resolve the relation at lint time, where Vault is absent
  execute format('select decrypted_secret from %I.decrypted_secrets where name = $1', 'vault')
    into secret using secret_name;
  if secret is null then
    raise exception 'Vault secret % is missing: create it with vault.create_secret (see README, Operations)',
      secret_name using errcode = 'P0001';
  end if;
  return secret;
end;
$$;
comment on function private.vault_secret(text) is 'The decrypted Vault secret of that name, or an error naming it.';
revoke all on function private.vault_secret(text) from public;

-- Idempotent: run it again after enabling pg_cron / pg_net later (`select private.schedule_operations()`).
-- Every cron call is dynamic SQL so this compiles (and `db lint` passes) without pg_cron.
-- The reconcile job reads the function's URL and bearer secret from Vault each time it runs, so neither
-- is ever written into cron.job; create them with
--   select vault.create_secret('https://<ref>.supabase.co/functions/v1/reconcile', 'payments_reconcile_url');
--   select vault.create_secret('<RECONCILE_SECRET>', 'payments_reconcile_secret');
create or replace function private.schedule_operations()
returns text[]
language plpgsql
set search_path = ''
as $$
declare
  done text[] := '{}'::text[];
  reconcile_call constant text := $job$
    select net.http_post(
      url := private.vault_secret('payments_reconcile_url'),
      headers := jsonb_build_object(
        'Content-Type', 'application/json',
        'Authorization', 'Bearer ' || private.vault_secret('payments_reconcile_secret')),
      body := '{}'::jsonb,
      timeout_milliseconds := 120000)
  $job$;
begin
  if not exists (select from pg_extension where extname = 'pg_cron') then
    raise notice 'pg_cron is not enabled here: nothing scheduled (see README, Operations)';
    return done;
  end if;
  -- the schema goes through format(): plpgsql_check (db lint) resolves constant EXECUTE strings
  execute format('select %I.schedule(%L, %L, %L)', 'cron', 'payments-prune-webhook-logs', '17 3 * * *',
    'select private.prune_webhook_logs()');
  done := done || 'payments-prune-webhook-logs'::text;
  execute format('select %I.schedule(%L, %L, %L)', 'cron', 'payments-prune-idempotency-keys', '41 * * * *',
    'select private.prune_idempotency_keys()');
  done := done || 'payments-prune-idempotency-keys'::text;

  if not exists (select from pg_extension where extname = 'pg_net')
    or to_regclass('vault.decrypted_secrets') is null
  then
    raise notice 'pg_net or Vault is not enabled here: reconcile is not scheduled (see README, Operations)';
    return done;
  end if;
  execute format('select %I.schedule(%L, %L, %L)', 'cron', 'payments-reconcile', '*/10 * * * *', reconcile_call);
  done := done || 'payments-reconcile'::text;
  return done;
end;
$$;
comment on function private.schedule_operations() is
  'Schedules reconcile (pg_cron + pg_net + Vault) and the retention jobs (pg_cron) when available; idempotent.';
revoke all on function private.schedule_operations() from public;
revoke all on function private.prune_idempotency_keys(integer) from public;

-- On Supabase, enabling pg_cron and pg_net is the project's choice (Dashboard → Database → Extensions, or
-- `create extension` as postgres); where the migration role may not create them this is a notice only.
do $$
begin
  begin
    create extension if not exists pg_cron with schema pg_catalog;
  exception when others then
    raise notice 'pg_cron not enabled: % (schedules skipped)', sqlerrm;
  end;
  begin
    create extension if not exists pg_net with schema extensions;
  exception when others then
    raise notice 'pg_net not enabled: % (the reconcile schedule is skipped)', sqlerrm;
  end;
  perform private.schedule_operations();
end
$$;
