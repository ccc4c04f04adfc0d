-- Purpose: what reconcile needs to make progress across runs instead of redoing the same work: when each
-- payment was last checked against PortOne (least-recently-checked first, whether or not anything
-- changed), and where each of its two PortOne readers stopped (the payment-event log checkpoint, and the
-- cursor of a look-back scan cut short by its limit).
-- Touches: column payments.checked_at; table reconcile_progress.

alter table public.payments add column checked_at timestamptz;
comment on column public.payments.checked_at is
  'When reconcile last asked PortOne about this payment, whatever the answer; orders its re-checks.';
-- the re-check of waiting payments reads them least-recently-checked first
create index payments_waiting_checked_idx on public.payments (coalesce(checked_at, created_at), id)
  where status in ('PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED');
create index payment_cancellations_requested_payment_idx on public.payment_cancellations (payment_id)
  where status = 'REQUESTED';

create table public.reconcile_progress (
  -- PortOne's cursors belong to one store: progress made for another store is never resumed
  store_id text not null check (char_length(store_id) between 1 and 100),
  -- 'payment_events': the checkpoint in PortOne's payment-event log; 'payments_scan': an unfinished scan
  reader text not null check (reader in ('payment_events', 'payments_scan')),
  -- PortOne's opaque cursor of the last item handled; null = start of the window
  cursor text check (char_length(cursor) <= 2000),
  window_from timestamptz not null,
  -- null for the event log, which follows PortOne up to the present
  window_until timestamptz,
  updated_at timestamptz not null default now(),
  primary key (store_id, reader),
  constraint reconcile_progress_window check (window_until is null or window_until >= window_from)
);
comment on table public.reconcile_progress is
  'Where reconcile''s PortOne readers resume: the payment-event checkpoint and any scan cut short.';

alter table public.reconcile_progress enable row level security;
revoke all on table public.reconcile_progress from anon, authenticated, service_role;
grant select, insert, update, delete on table public.reconcile_progress to service_role;
