-- Purpose: the sync's apply as one function call, so taking a PortOne snapshot costs one round trip and one
-- commit instead of a dozen statements in an explicit transaction (issue #14). The rules are the ones the
-- sync held in TypeScript until now, moved here beside the triggers and constraints that already guard them:
-- the lock order (order, then payment), the watermark (statusChangedAt, then progress), the status machine,
-- the comparison with our order, cancellations brought in line with PortOne's list and our reservations
-- that can no longer succeed settled, exactly one audit event per real change.
-- A webhook delivery of a payment is recorded, applied and finished in the same single call.
-- Touches: functions private.payment_status_rank, private.payment_can_transition,
-- private.snapshot_is_newer, private.snapshot_mismatches, private.payment_view,
-- private.record_cancellation_settlement, private.refuse_unacknowledged_cancellations,
-- private.settle_cancellation, private.apply_payment_snapshot,
-- private.receive_payment_webhook.

-- How far along a payment is; two snapshots of the same instant are ordered by it (mirrors statusRank).
create or replace function private.payment_status_rank(status text)
returns integer
language sql
immutable
set search_path = ''
as $$
  select case status
    when 'READY' then 0
    when 'FAILED' then 1
    when 'PAY_PENDING' then 2
    when 'VIRTUAL_ACCOUNT_ISSUED' then 3
    when 'PAID' then 4
    when 'PARTIAL_CANCELLED' then 5
    when 'CANCELLED' then 6
  end
$$;

-- The status machine's table (the same as allowedNextStatuses in shared/payments/status.ts and the
-- payments_enforce_rules trigger, which pgTAP holds equal to it). We see PortOne
-- only through snapshots, so every state reachable forward is legal; FAILED may be followed by a later
-- success (PortOne lets a customer retry the same paymentId); nothing returns to READY; CANCELLED is final.
create or replace function private.payment_can_transition(from_status text, to_status text)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select from_status = to_status or coalesce(case from_status
    when 'READY' then to_status in
      ('PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED', 'PAID', 'FAILED', 'PARTIAL_CANCELLED', 'CANCELLED')
    when 'PAY_PENDING' then to_status in
      ('VIRTUAL_ACCOUNT_ISSUED', 'PAID', 'FAILED', 'PARTIAL_CANCELLED', 'CANCELLED')
    when 'VIRTUAL_ACCOUNT_ISSUED' then to_status in ('PAID', 'FAILED', 'PARTIAL_CANCELLED', 'CANCELLED')
    when 'FAILED' then to_status in
      ('PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED', 'PAID', 'PARTIAL_CANCELLED', 'CANCELLED')
    when 'PAID' then to_status in ('PARTIAL_CANCELLED', 'CANCELLED')
    when 'PARTIAL_CANCELLED' then to_status = 'CANCELLED'
  end, false)
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
language sql
immutable
set search_path = ''
as $$
  select held_changed_at is null
    or snapshot_changed_at > held_changed_at
    or (snapshot_changed_at = held_changed_at
        and (private.payment_status_rank(snapshot_status), snapshot_cancelled, snapshot_paid)
          > (private.payment_status_rank(held_status), held_cancelled, held_paid))
$$;

-- What forbids treating PortOne's payment as paying our order, in a stable order. READY and FAILED move no
-- money, so what their window was opened with does not matter yet. Only the channels we issued for the
-- attempt count: another channel of the store (a stale test key, a LIVE one we never configured) pays nothing.
create or replace function private.snapshot_mismatches(
  snapshot jsonb,
  store_id text,
  total_amount bigint,
  tax_free_amount bigint,
  currency text,
  order_name text,
  channel_keys text[],
  require_live_channel boolean
)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  reasons text[] := '{}';
begin
  if snapshot ->> 'status' in ('READY', 'FAILED') then
    return reasons;
  end if;
  if snapshot ->> 'storeId' is distinct from store_id then
    reasons := array_append(reasons, 'store_mismatch');
  end if;
  if (snapshot ->> 'totalAmount')::bigint is distinct from total_amount then
    reasons := array_append(reasons, 'amount_mismatch');
  end if;
  if (snapshot ->> 'taxFreeAmount')::bigint is distinct from tax_free_amount then
    reasons := array_append(reasons, 'tax_free_mismatch');
  end if;
  if snapshot ->> 'currency' is distinct from currency then
    reasons := array_append(reasons, 'currency_mismatch');
  end if;
  if snapshot ->> 'orderName' is distinct from order_name then
    reasons := array_append(reasons, 'order_name_mismatch');
  end if;
  if require_live_channel and snapshot ->> 'channelType' is distinct from 'LIVE' then
    reasons := array_append(reasons, 'test_channel');
  end if;
  if snapshot ->> 'channelKey' is null
    or not coalesce(snapshot ->> 'channelKey' = any (array_remove(channel_keys, null)), false)
  then
    reasons := array_append(reasons, 'channel_mismatch');
  end if;
  return reasons;
end;
$$;

-- What clients are told about a payment (PaymentView in shared/payments/sync.ts).
create or replace function private.payment_view(payment_id text)
returns jsonb
language sql
stable
set search_path = ''
as $$
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
language sql
security invoker
set search_path = ''
as $$
  insert into public.payment_events (payment_id, source, kind, detail)
  values (
    record_cancellation_settlement.payment_id,
    record_cancellation_settlement.source,
    case when settled_status = 'SUCCEEDED' then 'cancel_succeeded' else 'cancel_failed' end,
    jsonb_build_object(
      'cancellationId', cancellation_id,
      'portoneCancellationId', record_cancellation_settlement.portone_cancellation_id,
      'reason', reason
    )
  )
$$;

-- Settles FAILED, as PortOne refuses them, our cancel requests it never acknowledged (no PortOne id) that
-- can no longer succeed: those sent with a currentCancellableAmount above `balance`, or all of them when
-- balance is null. Each gets its audit event; returns their ids.
create or replace function private.refuse_unacknowledged_cancellations(
  payment_id text,
  source text,
  balance bigint
)
returns uuid[]
language plpgsql
security invoker
set search_path = ''
as $$
declare
  refused uuid[];
begin
  with failed as (
    update public.payment_cancellations c
    set status = 'FAILED', failure_reason = 'CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN', settled_at = now()
    where c.payment_id = refuse_unacknowledged_cancellations.payment_id and c.status = 'REQUESTED'
      and c.portone_cancellation_id is null
      and (balance is null or coalesce(c.current_cancellable_amount, c.amount) > balance)
    returning c.id
  )
  select coalesce(array_agg(failed.id), '{}') into refused from failed;
  for i in 1 .. cardinality(refused) loop
    perform private.record_cancellation_settlement(refuse_unacknowledged_cancellations.payment_id,
      refuse_unacknowledged_cancellations.source, refused[i], 'FAILED', null,
      'CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN');
  end loop;
  return refused;
end;
$$;

-- Records PortOne's answer to one of our cancel requests under the payment's row lock and releases what is
-- no longer reserved. A refusal of our request never settles a cancellation PortOne itself holds: only
-- PortOne's word does. answer: { status, portoneId?, pgCancellationId?, failureReason? }.
create or replace function private.settle_cancellation(cancellation_id uuid, answer jsonb)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
declare
  target_payment text;
  settled_status text := answer ->> 'status';
  portone_id text := answer ->> 'portoneId';
begin
  select c.payment_id into target_payment
  from public.payment_cancellations c where c.id = settle_cancellation.cancellation_id;
  if target_payment is null then
    return;
  end if;
  perform 1 from public.payments p where p.id = target_payment for update;
  update public.payment_cancellations c set
    status = settled_status,
    portone_cancellation_id = coalesce(c.portone_cancellation_id, portone_id),
    pg_cancellation_id = coalesce(answer ->> 'pgCancellationId', c.pg_cancellation_id),
    failure_reason = answer ->> 'failureReason',
    settled_at = case when settled_status = 'REQUESTED' then null else coalesce(c.settled_at, now()) end
  where c.id = settle_cancellation.cancellation_id and c.status = 'REQUESTED'
    and (c.portone_cancellation_id is null or portone_id is not null);
  if not found then
    return;
  end if;
  update public.payments p set cancel_reserved_amount = (
    select coalesce(sum(c.amount), 0) from public.payment_cancellations c
    where c.payment_id = target_payment and c.status = 'REQUESTED')
  where p.id = target_payment;
  if settled_status <> 'REQUESTED' then
    perform private.record_cancellation_settlement(
      target_payment, 'cancel', settle_cancellation.cancellation_id, settled_status, portone_id,
      answer ->> 'failureReason');
  end if;
end;
$$;

-- Applies a parsed PortOne snapshot (PaymentSnapshot in shared/portone/snapshot.ts) in the caller's
-- transaction — one statement: its own. Returns { outcome, payment, changed, refused, unreachable, crowded }
-- for the caller's answer and log lines. settlement, when given, is PortOne's answer to our own cancel
-- request, recorded under the same locks before the snapshot is compared (see settle_cancellation).
--
-- Cancellations are brought in line with PortOne's list on every apply, newer snapshot or not (an
-- asynchronous cancel can fail at PortOne without any payment-level field changing). A reservation PortOne
-- never answered carries the currentCancellableAmount it was sent with, and PortOne performs it only while
-- its balance equals that; paid − cancelled never grows, so once the freshest balance we know is below it,
-- the request can never succeed and is settled FAILED here, as PortOne would refuse it.
create or replace function private.apply_payment_snapshot(
  snapshot jsonb,
  sync_source text,
  require_live_channel boolean,
  delivery_webhook_id text default null,
  settlement jsonb default null
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  target text := snapshot ->> 'id';
  new_status text := snapshot ->> 'status';
  new_changed_at timestamptz := (snapshot ->> 'statusChangedAt')::timestamptz;
  new_paid bigint := (snapshot ->> 'paidAmount')::bigint;
  new_cancelled bigint := (snapshot ->> 'cancelledAmount')::bigint;
  owner_order uuid;
  held public.payments%rowtype;
  held_order_name text;
  take boolean;
  refused jsonb;
  freshest bigint;
  recorded bigint;
  settled integer := 0;
  cancellation jsonb;
  cancellation_status text;
  cancellation_settled_at timestamptz;
  cancellation_failure text;
  known record;
  moved uuid;
  unreachable uuid[] := '{}';
  crowded uuid[];
  reserved bigint;
  reasons text[];
  new_order_status text;
  newly_mismatched boolean;
  changed boolean;
  virtual_account jsonb := snapshot -> 'virtualAccount';
begin
  -- One lock order everywhere: an order, then its payments. A payment's order never changes, so reading it
  -- unlocked first is safe.
  select p.order_id into owner_order from public.payments p where p.id = target;
  if owner_order is null then
    return jsonb_build_object('outcome', 'not_ours');
  end if;
  select o.order_name into held_order_name from public.orders o where o.id = owner_order for update;
  select * into held from public.payments p where p.id = target for update;
  if settlement is not null then
    perform private.settle_cancellation((settlement ->> 'cancellationId')::uuid, settlement);
  end if;

  take := private.snapshot_is_newer(new_status, new_changed_at, new_cancelled, new_paid,
    held.status, held.status_changed_at, held.cancelled_amount, held.paid_amount);
  if take and not private.payment_can_transition(held.status, new_status) then
    -- a move our machine forbids (e.g. back to READY after a failure) is kept out of our records and
    -- surfaced, instead of failing every retry of the delivery that carried it
    refused := jsonb_build_object('from', held.status, 'to', new_status);
    take := false;
  end if;
  -- PortOne's paid − cancelled only shrinks: the freshest we know is the smaller of the two
  if take then
    freshest := new_paid - new_cancelled;
    recorded := freshest;
  else
    freshest := least(held.paid_amount - held.cancelled_amount, new_paid - new_cancelled);
    recorded := held.paid_amount - held.cancelled_amount;
  end if;

  for cancellation in
    select value from jsonb_array_elements(coalesce(snapshot -> 'cancellations', '[]'::jsonb))
  loop
    cancellation_status := cancellation ->> 'status';
    cancellation_settled_at := case when cancellation_status = 'REQUESTED' then null
      else coalesce((cancellation ->> 'cancelledAt')::timestamptz, now()) end;
    cancellation_failure := case when cancellation_status = 'FAILED' then 'FAILED_AT_PORTONE' end;
    select c.id, c.payment_id, c.status into known
    from public.payment_cancellations c where c.portone_cancellation_id = cancellation ->> 'portoneId';
    if found then
      if known.payment_id = target and known.status = 'REQUESTED' and cancellation_status <> 'REQUESTED' then
        update public.payment_cancellations c
        set status = cancellation_status, settled_at = cancellation_settled_at,
            pg_cancellation_id = cancellation ->> 'pgCancellationId', failure_reason = cancellation_failure
        where c.id = known.id and c.status = 'REQUESTED';
        if found then
          settled := settled + 1;
          perform private.record_cancellation_settlement(target, sync_source, known.id, cancellation_status,
            cancellation ->> 'portoneId', cancellation_failure);
        end if;
      end if;
      continue;
    end if;
    -- A cancel we asked for whose answer never reached us (timeout, crash) shows up here first: claim the
    -- oldest matching request of ours instead of counting the same refund twice. Only one made through the
    -- API with our request's amount and reason can be ours: a console refund of the same amount is not.
    moved := null;
    if coalesce(cancellation ->> 'trigger', 'API') = 'API' then
      update public.payment_cancellations c
      set portone_cancellation_id = cancellation ->> 'portoneId', status = cancellation_status,
          settled_at = cancellation_settled_at, pg_cancellation_id = cancellation ->> 'pgCancellationId',
          failure_reason = cancellation_failure
      where c.id = (
        select mine.id from public.payment_cancellations mine
        where mine.payment_id = target and mine.portone_cancellation_id is null and mine.status = 'REQUESTED'
          and mine.amount = (cancellation ->> 'amount')::bigint
          and (cancellation ->> 'reason' = '' or mine.reason = cancellation ->> 'reason')
        order by mine.requested_at, mine.id
        limit 1
      )
      returning c.id into moved;
    end if;
    if moved is not null then
      if cancellation_status <> 'REQUESTED' then
        settled := settled + 1;
        perform private.record_cancellation_settlement(target, sync_source, moved, cancellation_status,
          cancellation ->> 'portoneId', cancellation_failure);
      end if;
      continue;
    end if;
    insert into public.payment_cancellations
      (payment_id, status, amount, tax_free_amount, reason, requester, portone_cancellation_id,
       pg_cancellation_id, requested_at, settled_at, failure_reason)
    values
      (target, cancellation_status, (cancellation ->> 'amount')::bigint,
       least((cancellation ->> 'taxFreeAmount')::bigint, (cancellation ->> 'amount')::bigint),
       left(coalesce(nullif(cancellation ->> 'reason', ''), 'cancelled at PortOne'), 200), 'PORTONE',
       cancellation ->> 'portoneId', cancellation ->> 'pgCancellationId',
       coalesce((cancellation ->> 'requestedAt')::timestamptz, now()), cancellation_settled_at,
       cancellation_failure)
    on conflict (portone_cancellation_id) do nothing;
  end loop;

  -- our requests PortOne never acknowledged that its balance can no longer carry
  unreachable := private.refuse_unacknowledged_cancellations(target, sync_source, freshest);
  settled := settled + cardinality(unreachable);

  select coalesce(sum(c.amount), 0) into reserved
  from public.payment_cancellations c where c.payment_id = target and c.status = 'REQUESTED';
  if reserved > recorded then
    -- Our request fits the balance but not beside cancellations PortOne itself holds: it could succeed
    -- only if one of those failed first. It cannot stay reserved (reserved ≤ cancellable), so it is refused
    -- here as PortOne refuses it now; performed after all, a later sync records it like a console refund.
    crowded := private.refuse_unacknowledged_cancellations(target, sync_source, null);
    settled := settled + cardinality(crowded);
    select coalesce(sum(c.amount), 0) into reserved
    from public.payment_cancellations c where c.payment_id = target and c.status = 'REQUESTED';
  end if;

  if not take then
    update public.payments p set cancel_reserved_amount = reserved
    where p.id = target and p.cancel_reserved_amount <> reserved;
    return jsonb_build_object(
      'outcome', case when settled > 0 then 'applied' else 'unchanged' end,
      'payment', private.payment_view(target),
      'refused', refused,
      'unreachable', to_jsonb(unreachable),
      'crowded', to_jsonb(crowded)
    );
  end if;

  reasons := private.snapshot_mismatches(snapshot, held.store_id, held.total_amount, held.tax_free_amount,
    held.currency, held_order_name, array[held.channel_key, held.billing_channel_key], require_live_channel);
  new_order_status := case new_status
    when 'PAID' then 'paid'
    when 'PARTIAL_CANCELLED' then 'partial_cancelled'
    when 'CANCELLED' then 'cancelled'
  end;
  if cardinality(reasons) = 0 and held.mismatch_reason is null and new_order_status is not null
    and new_paid > 0
  then
    update public.orders o
    set status = new_order_status, paid_payment_id = target,
        paid_at = coalesce(o.paid_at, (snapshot ->> 'paidAt')::timestamptz, now()), updated_at = now()
    where o.id = held.order_id and (o.paid_payment_id is null or o.paid_payment_id = target);
    if not found then
      reasons := array_append(reasons, 'order_already_paid');
    end if;
  end if;
  newly_mismatched := held.mismatch_reason is null and cardinality(reasons) > 0;

  update public.payments p set
    status = new_status,
    paid_amount = new_paid,
    cancelled_amount = new_cancelled,
    cancelled_tax_free_amount = (snapshot ->> 'cancelledTaxFreeAmount')::bigint,
    cancel_reserved_amount = reserved,
    channel_type = snapshot ->> 'channelType',
    pg_provider = snapshot ->> 'pgProvider',
    pg_tx_id = snapshot ->> 'pgTxId',
    method_type = snapshot ->> 'methodType',
    method_summary = nullif(snapshot -> 'methodSummary', 'null'::jsonb),
    virtual_account_bank = coalesce(virtual_account ->> 'bank', p.virtual_account_bank),
    virtual_account_number = coalesce(nullif(virtual_account ->> 'accountNumber', ''), p.virtual_account_number),
    virtual_account_holder = coalesce(virtual_account ->> 'holder', p.virtual_account_holder),
    virtual_account_expires_at = coalesce((virtual_account ->> 'expiresAt')::timestamptz,
      p.virtual_account_expires_at),
    failure_reason = snapshot ->> 'failureReason',
    mismatch_reason = coalesce(held.mismatch_reason, nullif(array_to_string(reasons, ','), '')),
    paid_at = (snapshot ->> 'paidAt')::timestamptz,
    failed_at = (snapshot ->> 'failedAt')::timestamptz,
    cancelled_at = (snapshot ->> 'cancelledAt')::timestamptz,
    status_changed_at = new_changed_at,
    portone_snapshot = snapshot -> 'stored',
    synced_at = now()
  where p.id = target;

  changed := new_status <> held.status or new_paid <> held.paid_amount
    or new_cancelled <> held.cancelled_amount or newly_mismatched;
  if changed then
    insert into public.payment_events (payment_id, source, kind, from_status, to_status, detail, webhook_id)
    values (target, sync_source, case when newly_mismatched then 'mismatch' else 'status_changed' end,
            held.status, new_status,
            jsonb_build_object(
              'statusChangedAt', snapshot -> 'statusChangedAt',
              'paidAmount', new_paid,
              'cancelledAmount', new_cancelled,
              'mismatch', to_jsonb(reasons)
            ),
            delivery_webhook_id);
  end if;
  return jsonb_build_object(
    'outcome', case when changed or settled > 0 then 'applied' else 'unchanged' end,
    'payment', private.payment_view(target),
    'changed', case when changed then jsonb_build_object(
      'from', held.status, 'to', new_status, 'mismatch', to_jsonb(reasons), 'newlyMismatched', newly_mismatched
    ) end,
    'unreachable', to_jsonb(unreachable),
    'crowded', to_jsonb(crowded)
  );
end;
$$;

-- A verified webhook delivery that names one of PortOne's payments, recorded, applied and finished in one
-- transaction (one call, one commit). Deliveries of the same webhook-id are serialized by a transaction-scoped
-- advisory lock on the id, taken before the inbox is read: a concurrent delivery waits for the first one's
-- commit and then finds its row finished (a duplicate), so each id is applied once. The inbox row is then
-- written once, already finished: no interim 'processing' version for anyone to see or index.
-- delivery: { webhookId, webhookTimestamp, eventType, paymentId, storeId, payload, payloadSha256,
-- processingMs }; snapshot: the parsed payment, or null when PortOne has no such payment or reports a
-- status we do not know (then nothing is applied).
create or replace function private.receive_payment_webhook(
  delivery jsonb,
  snapshot jsonb,
  require_live_channel boolean
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  prior_status text;
  result jsonb;
  delivery_status text;
  -- when the delivery reached us: before PortOne was asked, which took processingMs
  received timestamptz := now() - make_interval(secs => greatest((delivery ->> 'processingMs')::integer, 0) / 1000.0);
begin
  perform pg_advisory_xact_lock(hashtextextended('webhook_logs:' || (delivery ->> 'webhookId'), 0));
  select w.status into prior_status from public.webhook_logs w where w.webhook_id = delivery ->> 'webhookId';
  if prior_status in ('processed', 'ignored') then
    update public.webhook_logs w set
      attempts = w.attempts + 1,
      last_received_at = received,
      payload_conflict = w.payload_conflict or w.payload_sha256 <> delivery ->> 'payloadSha256'
    where w.webhook_id = delivery ->> 'webhookId';
    return jsonb_build_object('delivery', 'duplicate');
  end if;

  if snapshot is null then
    result := jsonb_build_object('outcome', case
      when exists (select 1 from public.payments p where p.id = delivery ->> 'paymentId') then 'not_at_portone'
      else 'not_ours' end);
  else
    result := private.apply_payment_snapshot(snapshot, 'webhook', require_live_channel,
      delivery ->> 'webhookId');
  end if;
  delivery_status := case when result ->> 'outcome' = 'not_ours' then 'ignored' else 'processed' end;
  insert into public.webhook_logs as w
    (webhook_id, webhook_timestamp, event_type, payment_id, store_id, payload, payload_sha256, status,
     last_error, received_at, last_received_at, processed_at, processing_ms)
  values
    (delivery ->> 'webhookId', (delivery ->> 'webhookTimestamp')::timestamptz, delivery ->> 'eventType',
     delivery ->> 'paymentId', delivery ->> 'storeId', delivery -> 'payload', delivery ->> 'payloadSha256',
     delivery_status, case when delivery_status = 'ignored' then 'unknown_payment' end, received, received,
     now(), greatest((delivery ->> 'processingMs')::integer, 0))
  -- an earlier delivery of this id failed, or its isolate died: this one finishes it
  on conflict (webhook_id) do update set
    attempts = w.attempts + 1,
    last_received_at = excluded.last_received_at,
    payload_conflict = w.payload_conflict or w.payload_sha256 <> excluded.payload_sha256,
    status = excluded.status,
    last_error = excluded.last_error,
    lease_token = null,
    lease_expires_at = null,
    processed_at = excluded.processed_at,
    processing_ms = excluded.processing_ms;
  return result || jsonb_build_object('delivery', delivery_status);
end;
$$;

revoke all on function private.payment_status_rank(text) from public, anon, authenticated, service_role;
revoke all on function private.payment_can_transition(text, text) from public, anon, authenticated, service_role;
revoke all on function private.snapshot_is_newer(text, timestamptz, bigint, bigint, text, timestamptz, bigint, bigint)
  from public, anon, authenticated, service_role;
revoke all on function private.snapshot_mismatches(jsonb, text, bigint, bigint, text, text, text[], boolean)
  from public, anon, authenticated, service_role;
revoke all on function private.payment_view(text) from public, anon, authenticated, service_role;
revoke all on function private.record_cancellation_settlement(text, text, uuid, text, text, text)
  from public, anon, authenticated, service_role;
revoke all on function private.settle_cancellation(uuid, jsonb) from public, anon, authenticated, service_role;
revoke all on function private.refuse_unacknowledged_cancellations(text, text, bigint)
  from public, anon, authenticated, service_role;
revoke all on function private.apply_payment_snapshot(jsonb, text, boolean, text, jsonb)
  from public, anon, authenticated, service_role;
revoke all on function private.receive_payment_webhook(jsonb, jsonb, boolean)
  from public, anon, authenticated, service_role;
