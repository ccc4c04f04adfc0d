-- Purpose: every function in private is plpgsql, so its plans are cached for the connection's life. A
-- `language sql` function with a SET clause (ours all set search_path) is never inlined, and PostgreSQL 15
-- parses and plans its body again in every transaction that calls it: measured on a webhook delivery, the
-- five helpers below cost the database ≈0.5 ms of its ≈1.6 ms of CPU (issue #14; pg_stat_user_functions
-- under the bench's c=16 load). Same signatures, results, volatility, owner and grants as before: only the
-- language changes, and pgTAP keeps every function in private plpgsql (10_private_functions.sql).
-- Touches: functions private.payment_status_rank, private.payment_can_transition,
-- private.snapshot_is_newer, private.payment_view, private.record_cancellation_settlement,
-- private.prune_webhook_logs.

-- How far along a payment is; two snapshots of the same instant are ordered by it (mirrors statusRank).
create or replace function private.payment_status_rank(status text)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case status
    when 'READY' then 0
    when 'FAILED' then 1
    when 'PAY_PENDING' then 2
    when 'VIRTUAL_ACCOUNT_ISSUED' then 3
    when 'PAID' then 4
    when 'PARTIAL_CANCELLED' then 5
    when 'CANCELLED' then 6
  end;
end;
$$;

-- The status machine's table (the same as the payments_enforce_rules trigger, which pgTAP holds equal to
-- it). We see PortOne only through snapshots, so every state reachable forward is legal; FAILED may be
-- followed by a later success (PortOne lets a customer retry the same paymentId); nothing returns to
-- READY; CANCELLED is final.
create or replace function private.payment_can_transition(from_status text, to_status text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return from_status = to_status or coalesce(case from_status
    when 'READY' then to_status in
      ('PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED', 'PAID', 'FAILED', 'PARTIAL_CANCELLED', 'CANCELLED')
    when 'PAY_PENDING' then to_status in
      ('VIRTUAL_ACCOUNT_ISSUED', 'PAID', 'FAILED', 'PARTIAL_CANCELLED', 'CANCELLED')
    when 'VIRTUAL_ACCOUNT_ISSUED' then to_status in ('PAID', 'FAILED', 'PARTIAL_CANCELLED', 'CANCELLED')
    when 'FAILED' then to_status in
      ('PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED', 'PAID', 'PARTIAL_CANCELLED', 'CANCELLED')
    when 'PAID' then to_status in ('PARTIAL_CANCELLED', 'CANCELLED')
    when 'PARTIAL_CANCELLED' then to_status = 'CANCELLED'
  end, false);
end;
$$;

-- Is a snapshot newer than what we hold? A later statusChangedAt is; within the same instant, more progress
-- (status rank, then cancelled amount, then paid amount) is: two events of the same second still converge.
create or replace function private.snapshot_is_newer(
  snapshot_status text,
  snapshot_changed_at timestamptz,
  snapshot_cancelled bigint,
  snapshot_paid bigint,
  held_status text,
  held_changed_at timestamptz,
  held_cancelled bigint,
  held_paid bigint
)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return held_changed_at is null
    or snapshot_changed_at > held_changed_at
    or (snapshot_changed_at = held_changed_at
        and (private.payment_status_rank(snapshot_status), snapshot_cancelled, snapshot_paid)
          > (private.payment_status_rank(held_status), held_cancelled, held_paid));
end;
$$;

-- What clients are told about a payment (PaymentView in shared/payments/sync.ts); null for no payment.
create or replace function private.payment_view(payment_id text)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select jsonb_build_object(
        'paymentId', p.id,
        'status', p.status,
        'order', jsonb_build_object('id', o.id, 'status', o.status),
        'currency', p.currency,
        'totalAmount', p.total_amount,
        'paidAmount', p.paid_amount,
        'cancelledAmount', p.cancelled_amount,
        'cancellableAmount', p.cancellable_amount,
        'mismatchReason', p.mismatch_reason
      ) || case when coalesce(p.virtual_account_number, '') = '' then '{}'::jsonb else jsonb_build_object(
        'virtualAccount', jsonb_build_object(
          'bank', p.virtual_account_bank,
          'accountNumber', p.virtual_account_number,
          'holder', p.virtual_account_holder,
          'expiresAt', to_char(p.virtual_account_expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        )
      ) end
    from public.payments p
    join public.orders o on o.id = p.order_id
    where p.id = payment_view.payment_id
  );
end;
$$;

-- The audit event of one cancellation settling, written by whoever moved it out of REQUESTED, once.
create or replace function private.record_cancellation_settlement(
  payment_id text,
  source text,
  cancellation_id uuid,
  settled_status text,
  portone_cancellation_id text,
  reason text
)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  insert into public.payment_events (payment_id, source, kind, detail)
  values (
    record_cancellation_settlement.payment_id,
    record_cancellation_settlement.source,
    case when record_cancellation_settlement.settled_status = 'SUCCEEDED' then 'cancel_succeeded'
      else 'cancel_failed' end,
    jsonb_build_object(
      'cancellationId', record_cancellation_settlement.cancellation_id,
      'portoneCancellationId', record_cancellation_settlement.portone_cancellation_id,
      'reason', record_cancellation_settlement.reason
    )
  );
end;
$$;

create or replace function private.prune_webhook_logs(keep interval default interval '30 days')
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  pruned bigint;
begin
  delete from public.webhook_logs w
  where w.status in ('processed', 'ignored', 'malformed', 'unsupported_format')
    and w.received_at < now() - prune_webhook_logs.keep;
  get diagnostics pruned = row_count;
  return pruned;
end;
$$;
