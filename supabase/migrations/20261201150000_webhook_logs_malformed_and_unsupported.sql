-- Purpose: verified webhook deliveries that cannot be processed are recorded, not refused: `malformed`
-- (not JSON, not an object, text Postgres cannot store, absurd nesting, a webhook-id over 256
-- characters, kept under `sha256:<hex of the id>`) and `unsupported_format` (PortOne V1 bodies). Both are
-- finished rows: pruned after the retention period like processed and ignored ones.
-- Touches: table webhook_logs (status check), function private.prune_webhook_logs.

alter table public.webhook_logs drop constraint webhook_logs_status_check;
alter table public.webhook_logs add constraint webhook_logs_status_check
  check (status in ('received', 'processing', 'processed', 'failed', 'ignored', 'malformed', 'unsupported_format'));

create or replace function private.prune_webhook_logs(keep interval default interval '30 days')
returns bigint
language sql
set search_path = ''
as $$
  with pruned as (
    delete from public.webhook_logs
    where status in ('processed', 'ignored', 'malformed', 'unsupported_format') and received_at < now() - keep
    returning 1
  )
  select count(*) from pruned
$$;
comment on function private.prune_webhook_logs(interval) is 'Deletes finished webhook_logs rows older than keep.';
