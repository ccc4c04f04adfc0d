-- Proves the sync's apply as one call (private.apply_payment_snapshot and friends, as the superuser):
--   * payment_can_transition agrees with the payments_enforce_rules trigger on all 49 status pairs;
--   * a newer snapshot is taken once (order paid, one status_changed event); the same snapshot again and an
--     older one change nothing; a payment we never prepared is not_ours and writes nothing;
--   * a snapshot that does not match the order flags the payment, leaves the order pending, and records one
--     mismatch event;
--   * a cancel whose answer was lost is claimed from PortOne's list (same amount and reason, made by API)
--     instead of counted twice; a console refund of the same amount is recorded as PortOne's, and our
--     reservation its balance can no longer carry is settled FAILED with its audit event;
--   * settle_cancellation records our cancel's answer and releases the reservation; a refusal never settles
--     a cancellation PortOne holds;
--   * receive_payment_webhook records, applies and finishes a delivery once: a redelivery is a duplicate
--     that only counts an attempt; a payment we never prepared is ignored as unknown_payment; a delivery
--     whose earlier attempt failed is processed and its row finished;
--   * no API role may execute any of these functions.
begin;
set local search_path = public, extensions, tests;

select plan(35);

do $$
declare
  buyer uuid := tests.create_supabase_user('aps-buyer');
begin
  insert into public.orders (id, user_id, order_name, total_amount, tax_free_amount, currency) values
    ('a8000000-0000-4000-8000-000000000001', buyer, 'APS order', 10000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000002', buyer, 'APS mismatch order', 10000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000003', buyer, 'APS cancel order', 10000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000004', buyer, 'APS webhook order', 10000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000005', buyer, 'APS transitions', 10000, 0, 'KRW');
  insert into public.payments (id, order_id, user_id, store_id, channel_key, total_amount, tax_free_amount, currency)
  values
    ('aps_payment_00000001', 'a8000000-0000-4000-8000-000000000001', buyer, 'store-aps', 'channel-aps', 10000, 0, 'KRW'),
    ('aps_payment_00000002', 'a8000000-0000-4000-8000-000000000002', buyer, 'store-aps', 'channel-aps', 10000, 0, 'KRW'),
    ('aps_payment_00000003', 'a8000000-0000-4000-8000-000000000003', buyer, 'store-aps', 'channel-aps', 10000, 0, 'KRW'),
    ('aps_payment_00000004', 'a8000000-0000-4000-8000-000000000004', buyer, 'store-aps', 'channel-aps', 10000, 0, 'KRW');
end;
$$;

-- A PortOne snapshot as shared/portone/snapshot.ts parses it.
create function pg_temp.snapshot(
  id text, status text, changed_at text, paid bigint, cancelled bigint,
  cancellations jsonb default '[]', order_name text default null, total bigint default 10000
) returns jsonb language sql as $$
  select jsonb_build_object(
    'kind', 'payment', 'id', id, 'status', status, 'storeId', 'store-aps',
    'orderName', coalesce(order_name, (select o.order_name from public.orders o
                                        join public.payments p on p.order_id = o.id where p.id = snapshot.id)),
    'currency', 'KRW', 'statusChangedAt', changed_at, 'totalAmount', total, 'taxFreeAmount', 0,
    'paidAmount', paid, 'cancelledAmount', cancelled, 'cancelledTaxFreeAmount', 0, 'channelType', 'TEST',
    'channelKey', 'channel-aps', 'pgProvider', 'TOSSPAYMENTS', 'pgTxId', null, 'methodType', 'CARD',
    'methodSummary', null, 'virtualAccount', null, 'paidAt', case when paid > 0 then changed_at end,
    'failedAt', null, 'cancelledAt', null, 'failureReason', null, 'cancellations', cancellations,
    'stored', jsonb_build_object('id', id, 'status', status))
$$;

-- 1. the transition table is the trigger's -------------------------------------------------------------
insert into public.payments (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency)
select 'aps_transitions_0001', 'a8000000-0000-4000-8000-000000000005', user_id, 'store-aps', 10000, 0, 'KRW'
from public.orders where id = 'a8000000-0000-4000-8000-000000000005';
-- the trigger is asked from each state in turn: the row is put there with the trigger off
create function pg_temp.disagreements() returns text[] language plpgsql as $$
declare
  statuses text[] := array['READY', 'PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED', 'PAID', 'FAILED',
                           'PARTIAL_CANCELLED', 'CANCELLED'];
  f text;
  t text;
  found_differences text[] := '{}';
  allowed boolean;
begin
  foreach f in array statuses loop
    foreach t in array statuses loop
      alter table public.payments disable trigger payments_enforce_rules;
      update public.payments set status = f where id = 'aps_transitions_0001';
      alter table public.payments enable trigger payments_enforce_rules;
      begin
        update public.payments set status = t where id = 'aps_transitions_0001';
        allowed := true;
      exception when sqlstate 'P0001' then
        allowed := false;
      end;
      if allowed <> private.payment_can_transition(f, t) then
        found_differences := array_append(found_differences, f || '->' || t);
      end if;
    end loop;
  end loop;
  return found_differences;
end;
$$;
select is(pg_temp.disagreements(), '{}'::text[], 'payment_can_transition agrees with the trigger on all 49 pairs');
select is(private.payment_can_transition('CANCELLED', 'PAID'), false, 'CANCELLED is final');

-- 2. newer, same, older, not ours ---------------------------------------------------------------------
select is(
  private.apply_payment_snapshot(pg_temp.snapshot('aps_payment_00000001', 'PAID', '2026-11-26T10:00:00Z', 10000, 0),
    'webhook', false) ->> 'outcome',
  'applied', 'a newer snapshot is applied');
select is((select status from public.orders where id = 'a8000000-0000-4000-8000-000000000001'), 'paid',
  'the order is paid by it');
select is((select count(*)::int from public.payment_events where payment_id = 'aps_payment_00000001' and kind = 'status_changed'),
  1, 'one status_changed event');
select is(
  private.apply_payment_snapshot(pg_temp.snapshot('aps_payment_00000001', 'PAID', '2026-11-26T10:00:00Z', 10000, 0),
    'confirm', false) ->> 'outcome',
  'unchanged', 'the same snapshot again changes nothing');
select is(
  private.apply_payment_snapshot(pg_temp.snapshot('aps_payment_00000001', 'READY', '2026-11-26T09:00:00Z', 0, 0),
    'reconcile', false) ->> 'outcome',
  'unchanged', 'an older snapshot changes nothing');
select is((select count(*)::int from public.payment_events where payment_id = 'aps_payment_00000001'),
  1, 'still exactly one event');
select is(
  private.apply_payment_snapshot(pg_temp.snapshot('aps_never_prepared_1', 'PAID', '2026-11-26T10:00:00Z', 10000, 0, '[]', 'x'),
    'webhook', false),
  '{"outcome": "not_ours"}'::jsonb, 'a payment we never prepared is not ours');
select is(
  (private.apply_payment_snapshot(pg_temp.snapshot('aps_payment_00000001', 'PAID', '2026-11-26T10:00:00Z', 10000, 0),
    'confirm', false) -> 'payment') - 'order',
  jsonb_build_object('paymentId', 'aps_payment_00000001', 'status', 'PAID', 'currency', 'KRW',
    'totalAmount', 10000, 'paidAmount', 10000, 'cancelledAmount', 0, 'cancellableAmount', 10000,
    'mismatchReason', null),
  'the answer carries the client view of the payment');

-- 3. a mismatch ---------------------------------------------------------------------------------------
select is(
  private.apply_payment_snapshot(
    pg_temp.snapshot('aps_payment_00000002', 'PAID', '2026-11-26T10:00:00Z', 5000, 0, '[]', null, 5000),
    'webhook', false) -> 'changed' -> 'mismatch',
  '["amount_mismatch"]'::jsonb, 'an amount that is not the order''s is named');
select is((select mismatch_reason from public.payments where id = 'aps_payment_00000002'), 'amount_mismatch',
  'the payment is flagged');
select is((select status from public.orders where id = 'a8000000-0000-4000-8000-000000000002'), 'pending',
  'the order stays unpaid');
select is((select kind from public.payment_events where payment_id = 'aps_payment_00000002'), 'mismatch',
  'one mismatch event');

-- 4. cancellations ------------------------------------------------------------------------------------
select private.apply_payment_snapshot(pg_temp.snapshot('aps_payment_00000003', 'PAID', '2026-11-26T10:00:00Z', 10000, 0),
  'webhook', false);
insert into public.payment_cancellations
  (id, payment_id, amount, reason, requester, idempotency_key, current_cancellable_amount)
values
  ('c8000000-0000-4000-8000-000000000001', 'aps_payment_00000003', 3000, 'lost answer', 'ADMIN',
   'aps-cancel-key-00000001', 10000);
update public.payments set cancel_reserved_amount = 3000 where id = 'aps_payment_00000003';
select is(
  private.apply_payment_snapshot(pg_temp.snapshot('aps_payment_00000003', 'PARTIAL_CANCELLED', '2026-11-26T10:01:00Z',
    10000, 3000, '[{"portoneId": "pc-aps-1", "status": "SUCCEEDED", "amount": 3000, "taxFreeAmount": 0,
      "reason": "lost answer", "pgCancellationId": null, "trigger": "API", "requestedAt": null,
      "cancelledAt": "2026-11-26T10:01:00Z"}]'),
    'webhook', false) ->> 'outcome',
  'applied', 'a partial cancel is applied');
select results_eq(
  $$ select id::text, status, portone_cancellation_id from public.payment_cancellations
     where payment_id = 'aps_payment_00000003' $$,
  $$ values ('c8000000-0000-4000-8000-000000000001', 'SUCCEEDED', 'pc-aps-1') $$,
  'our lost cancel is claimed, not counted twice');
select is((select cancel_reserved_amount from public.payments where id = 'aps_payment_00000003'), 0::bigint,
  'nothing stays reserved');
select is(
  (select count(*)::int from public.payment_events where payment_id = 'aps_payment_00000003' and kind = 'cancel_succeeded'),
  1, 'one cancel_succeeded event');

insert into public.payment_cancellations
  (id, payment_id, amount, reason, requester, idempotency_key, current_cancellable_amount)
values
  ('c8000000-0000-4000-8000-000000000002', 'aps_payment_00000003', 2000, 'unanswered', 'ADMIN',
   'aps-cancel-key-00000002', 7000);
update public.payments set cancel_reserved_amount = 2000 where id = 'aps_payment_00000003';
select is(
  private.apply_payment_snapshot(pg_temp.snapshot('aps_payment_00000003', 'PARTIAL_CANCELLED', '2026-11-26T10:02:00Z',
    10000, 5000, '[{"portoneId": "pc-aps-1", "status": "SUCCEEDED", "amount": 3000, "taxFreeAmount": 0,
      "reason": "lost answer", "pgCancellationId": null, "trigger": "API", "requestedAt": null,
      "cancelledAt": "2026-11-26T10:01:00Z"},
     {"portoneId": "pc-aps-console", "status": "SUCCEEDED", "amount": 2000, "taxFreeAmount": 0,
      "reason": "", "pgCancellationId": null, "trigger": "CONSOLE", "requestedAt": null,
      "cancelledAt": "2026-11-26T10:02:00Z"}]'),
    'reconcile', false) -> 'unreachable',
  '["c8000000-0000-4000-8000-000000000002"]'::jsonb,
  'our reservation the balance can no longer carry is settled');
select results_eq(
  $$ select status, failure_reason from public.payment_cancellations
     where id = 'c8000000-0000-4000-8000-000000000002' $$,
  $$ values ('FAILED', 'CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN') $$,
  'settled FAILED as PortOne would refuse it');
select results_eq(
  $$ select requester, amount, reason from public.payment_cancellations
     where portone_cancellation_id = 'pc-aps-console' $$,
  $$ values ('PORTONE', 2000::bigint, 'cancelled at PortOne') $$,
  'a console refund of the same amount is recorded as PortOne''s, never taken for ours');
select is(
  (select count(*)::int from public.payment_events where payment_id = 'aps_payment_00000003' and kind = 'cancel_failed'),
  1, 'one cancel_failed event');

-- 5. settle_cancellation ------------------------------------------------------------------------------
insert into public.payment_cancellations
  (id, payment_id, amount, reason, requester, idempotency_key, current_cancellable_amount, portone_cancellation_id)
values
  ('c8000000-0000-4000-8000-000000000003', 'aps_payment_00000003', 1000, 'held at PortOne', 'ADMIN',
   'aps-cancel-key-00000003', 5000, 'pc-aps-held'),
  ('c8000000-0000-4000-8000-000000000004', 'aps_payment_00000001', 1000, 'refused', 'ADMIN',
   'aps-cancel-key-00000004', 10000, null);
update public.payments set cancel_reserved_amount = 1000 where id in ('aps_payment_00000003', 'aps_payment_00000001');
select private.settle_cancellation('c8000000-0000-4000-8000-000000000003',
  '{"status": "FAILED", "failureReason": "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN"}');
select is((select status from public.payment_cancellations where id = 'c8000000-0000-4000-8000-000000000003'),
  'REQUESTED', 'a refusal never settles a cancellation PortOne holds');
select private.settle_cancellation('c8000000-0000-4000-8000-000000000004',
  '{"status": "FAILED", "failureReason": "PAYMENT_NOT_PAID"}');
select results_eq(
  $$ select c.status, c.failure_reason, p.cancel_reserved_amount
     from public.payment_cancellations c join public.payments p on p.id = c.payment_id
     where c.id = 'c8000000-0000-4000-8000-000000000004' $$,
  $$ values ('FAILED', 'PAYMENT_NOT_PAID', 0::bigint) $$,
  'a refused cancel is settled and its reservation released');
select is(
  (select detail ->> 'cancellationId' from public.payment_events
    where payment_id = 'aps_payment_00000001' and kind = 'cancel_failed'),
  'c8000000-0000-4000-8000-000000000004', 'with its audit event');

-- 6. receive_payment_webhook --------------------------------------------------------------------------
create function pg_temp.delivery(webhook_id text, payment_id text) returns jsonb language sql as $$
  select jsonb_build_object('webhookId', webhook_id, 'webhookTimestamp', '2026-11-26T10:00:00Z',
    'eventType', 'Transaction.Paid', 'paymentId', payment_id, 'storeId', 'store-aps',
    'payload', jsonb_build_object('type', 'Transaction.Paid'), 'payloadSha256', repeat('a', 64), 'processingMs', 3)
$$;
select is(
  private.receive_payment_webhook(pg_temp.delivery('aps-wh-1', 'aps_payment_00000004'),
    pg_temp.snapshot('aps_payment_00000004', 'PAID', '2026-11-26T10:00:00Z', 10000, 0), false) ->> 'delivery',
  'processed', 'a delivery is processed');
select results_eq(
  $$ select status, attempts, lease_token is null, processing_ms from public.webhook_logs where webhook_id = 'aps-wh-1' $$,
  $$ values ('processed', 1, true, 3) $$,
  'and finished in the same call');
select is(
  (select count(*)::int from public.payment_events where payment_id = 'aps_payment_00000004' and webhook_id = 'aps-wh-1'),
  1, 'its event names the delivery');
select is(
  private.receive_payment_webhook(pg_temp.delivery('aps-wh-1', 'aps_payment_00000004'),
    pg_temp.snapshot('aps_payment_00000004', 'PAID', '2026-11-26T10:00:00Z', 10000, 0), false),
  '{"delivery": "duplicate"}'::jsonb, 'a redelivery is a duplicate');
select is((select attempts from public.webhook_logs where webhook_id = 'aps-wh-1'), 2,
  'that only counts an attempt');
select is(
  private.receive_payment_webhook(pg_temp.delivery('aps-wh-2', 'aps_never_prepared_2'), null, false) ->> 'delivery',
  'ignored', 'a payment we never prepared is ignored');
select is((select last_error from public.webhook_logs where webhook_id = 'aps-wh-2'), 'unknown_payment',
  'as unknown_payment');

insert into public.webhook_logs (webhook_id, payload, payload_sha256, status, last_error)
values ('aps-wh-3', '{}', repeat('a', 64), 'failed', 'portone_unavailable');
select is(
  private.receive_payment_webhook(pg_temp.delivery('aps-wh-3', 'aps_payment_00000004'),
    pg_temp.snapshot('aps_payment_00000004', 'PAID', '2026-11-26T10:00:00Z', 10000, 0), false) ->> 'delivery',
  'processed', 'a delivery whose earlier attempt failed is processed again');
select results_eq(
  $$ select status, attempts, last_error from public.webhook_logs where webhook_id = 'aps-wh-3' $$,
  $$ values ('processed', 2, null::text) $$,
  'and its row finished, the attempt counted');

-- 7. no API role may call them ------------------------------------------------------------------------
select is(
  (select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   cross join (values ('anon'), ('authenticated'), ('service_role')) r(role)
   where n.nspname = 'private'
     and p.proname in ('payment_status_rank', 'payment_can_transition', 'snapshot_is_newer', 'snapshot_mismatches',
                       'payment_view', 'record_cancellation_settlement', 'refuse_unacknowledged_cancellations',
                       'settle_cancellation', 'apply_payment_snapshot', 'receive_payment_webhook')
     and has_function_privilege(r.role, p.oid, 'execute')),
  0, 'no API role may execute the apply or its parts');

select * from finish();
rollback;
