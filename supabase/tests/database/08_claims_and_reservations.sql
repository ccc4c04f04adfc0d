-- Proves the one-call functions of 20261201170100_one_call_reservations.sql (as the superuser, the way the
-- functions' own connection calls them), rule by rule as prepare.ts and charge.ts applied them before:
--   * no API role (anon, a signed-in user, service_role) may call any of them (42501);
--   * private.claim_idempotency_key: a requirement that is not true is reported by position and writes
--     nothing; a fresh key is claimed (in_progress, with a lease); a second call reports the claim holding it
--     (no claim), with its request hash; a completed reply is reported for replay; a claim of the same
--     request whose lease ran out is taken over (a new created_at), one of another request is not; an
--     expired reply is claimed afresh;
--   * private.reserve_payment_attempt: someone else's order and a missing one raise PT001 'Order not found';
--     a paid order raises PT002 'Order is paid'; a pending payment or an open virtual account raise PT003
--     'Payment <id> for this order is in progress', an expired virtual account does not; the newest READY
--     attempt is handed out again with the requested channel; otherwise a new attempt copies the order's
--     amounts and gets a 'created' event;
--   * private.reserve_billing_attempt: a key whose value is not the one the caller read is 'key_changed'
--     (nothing written); a key the caller could not open is refused with its message (PT005), after every
--     other refusal and before any write; a re-sealed value is stored with the reservation, only over the
--     value the caller read; someone else's key raises PT001 'Billing key not found', a deleted one PT004 'The
--     billing key is deleted', one of another channel PT004 'The billing key was issued through another
--     channel'; someone else's order PT001 'Order not found'; a READY attempt of another key younger than the
--     in-flight window raises PT003, an older one does not block; a window's READY attempt is taken over
--     (billing channel recorded, 'taken_over_by_saved_card' event); a new attempt carries the key and a
--     'created' event with the request key; an earlier try of the same request that PortOne settled is
--     answered 'settled', even once the order is paid; a paid order raises PT002 for another request.
begin;
set local search_path = public, extensions, tests;

select plan(59);

-- Fixtures (as the superuser) ------------------------------------------------------------------------
do $$
declare
  buyer uuid := tests.create_supabase_user('cr-buyer');
  other uuid := tests.create_supabase_user('cr-other');
begin
  insert into public.orders (id, user_id, order_name, total_amount, tax_free_amount, currency) values
    ('a8000000-0000-4000-8000-000000000001', buyer, 'CR fresh order', 12000, 2000, 'KRW'),
    ('a8000000-0000-4000-8000-000000000002', buyer, 'CR pending-payment order', 5000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000003', buyer, 'CR virtual account order', 5000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000004', buyer, 'CR expired account order', 5000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000005', buyer, 'CR paid order', 5000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000006', other, 'CR other''s order', 5000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000007', buyer, 'CR window order', 7000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000008', buyer, 'CR saved card order', 8000, 0, 'KRW'),
    ('a8000000-0000-4000-8000-000000000009', buyer, 'CR in-flight order', 9000, 0, 'KRW');
  insert into public.payments (id, order_id, user_id, store_id, status, total_amount, tax_free_amount, currency,
                               virtual_account_expires_at)
  values
    ('cr_pending_payment_0001', 'a8000000-0000-4000-8000-000000000002', buyer, 'store-cr', 'PAY_PENDING', 5000, 0,
     'KRW', null),
    ('cr_open_account_000001', 'a8000000-0000-4000-8000-000000000003', buyer, 'store-cr', 'VIRTUAL_ACCOUNT_ISSUED',
     5000, 0, 'KRW', now() + interval '1 day'),
    ('cr_expired_account_0001', 'a8000000-0000-4000-8000-000000000004', buyer, 'store-cr', 'VIRTUAL_ACCOUNT_ISSUED',
     5000, 0, 'KRW', now() - interval '1 day');
  insert into public.payments (id, order_id, user_id, store_id, status, total_amount, tax_free_amount, currency,
                               paid_amount, paid_at)
  values ('cr_paid_payment_000001', 'a8000000-0000-4000-8000-000000000005', buyer, 'store-cr', 'PAID', 5000, 0,
          'KRW', 5000, now());
  update public.orders set status = 'paid', paid_payment_id = 'cr_paid_payment_000001', paid_at = now()
  where id = 'a8000000-0000-4000-8000-000000000005';
  insert into public.billing_keys (id, user_id, billing_key, store_id, status, deleted_at, channel_key) values
    ('b8000000-0000-4000-8000-000000000001', buyer, 'cr-billing-key-1', 'store-cr', 'ISSUED', null, null),
    ('b8000000-0000-4000-8000-000000000002', buyer, 'cr-billing-key-2', 'store-cr', 'DELETED', now(), null),
    ('b8000000-0000-4000-8000-000000000003', buyer, 'cr-billing-key-3', 'store-cr', 'ISSUED', null, 'channel-old'),
    ('b8000000-0000-4000-8000-000000000004', other, 'cr-billing-key-4', 'store-cr', 'ISSUED', null, null),
    ('b8000000-0000-4000-8000-000000000005', buyer, 'cr-billing-key-5', 'store-cr', 'ISSUED', null, null);
end
$$;

create function pg_temp.buyer() returns uuid language sql as $$ select tests.get_supabase_uid('cr-buyer') $$;

-- Nobody but the functions' own connection may call them ----------------------------------------------
select tests.clear_authentication();
select throws_ok($$ select * from private.claim_idempotency_key(gen_random_uuid(), 'r', 'k', repeat('a', 64), 10) $$,
  '42501', null, 'anon: claim_idempotency_key cannot be called');
select tests.authenticate_as('cr-buyer');
select throws_ok($$ select * from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
  'a8000000-0000-4000-8000-000000000001', 'ch', 'store-cr', 'cr_never_created_00001') $$,
  '42501', null, 'user: reserve_payment_attempt cannot be called');
select tests.authenticate_as_service_role();
select throws_ok($$ select * from private.reserve_billing_attempt(gen_random_uuid(), gen_random_uuid()::text,
  gen_random_uuid()::text, 'rk', 'store-cr', 'ch', 60, 'cr_never_created_00002', true) $$,
  '42501', null, 'service_role: reserve_billing_attempt cannot be called');
select throws_ok($$ select * from private.claim_idempotency_key(gen_random_uuid(), 'r', 'k', repeat('a', 64), 10) $$,
  '42501', null, 'service_role: claim_idempotency_key cannot be called');
select tests.reset_role();

-- claim_idempotency_key ------------------------------------------------------------------------------
select is(
  (select refused from private.claim_idempotency_key(pg_temp.buyer(), 'cr', 'key-refused', repeat('a', 64), 10,
                                                   array[true, false, true])),
  2, 'the first requirement that does not hold is reported by position');
select is((select count(*)::int from public.idempotency_keys where key = 'key-refused'), 0,
  'a refused request writes nothing, not even the claim');
select is(
  (select refused from private.claim_idempotency_key(pg_temp.buyer(), 'cr', 'key-refused', repeat('a', 64), 10,
                                                   array[null::boolean])),
  1, 'a requirement that is null does not hold either');

select ok(
  (select claim_id is not null and claimed_at is not null and refused is null
   from private.claim_idempotency_key(pg_temp.buyer(), 'cr', 'key-1', repeat('a', 64), 10, array[true])),
  'a fresh key is claimed');
select ok(
  (select status = 'in_progress' and locked_until between now() + interval '9 seconds' and now() + interval '11 seconds'
   from public.idempotency_keys where key = 'key-1'),
  'the claim is in progress with a lease of the requested length');
select results_eq(
  $$ select claim_id, stored_request_hash, stored_status from private.claim_idempotency_key(
       tests.get_supabase_uid('cr-buyer'), 'cr', 'key-1', repeat('a', 64), 10) $$,
  $$ values (null::bigint, repeat('a', 64), 'in_progress') $$,
  'a second call while the lease runs reports the claim holding the key, and claims nothing');
select results_eq(
  $$ select claim_id, stored_request_hash from private.claim_idempotency_key(
       tests.get_supabase_uid('cr-buyer'), 'cr', 'key-1', repeat('b', 64), 10) $$,
  $$ values (null::bigint, repeat('a', 64)) $$,
  'another request under the key sees the first request''s hash (for the 422)');

update public.idempotency_keys set locked_until = now() - interval '1 second' where key = 'key-1';
select results_eq(
  $$ select claim_id from private.claim_idempotency_key(
       tests.get_supabase_uid('cr-buyer'), 'cr', 'key-1', repeat('b', 64), 10) $$,
  $$ values (null::bigint) $$,
  'a lapsed claim of another request is not taken over');
update public.idempotency_keys set created_at = now() - interval '1 minute' where key = 'key-1';
select ok(
  (select claim_id = (select id from public.idempotency_keys where key = 'key-1')
   from private.claim_idempotency_key(pg_temp.buyer(), 'cr', 'key-1', repeat('a', 64), 10)),
  'a lapsed claim of the same request is taken over');
select ok((select created_at = now() and locked_until > now() from public.idempotency_keys where key = 'key-1'),
  'the takeover is a new claim (new created_at, new lease)');

update public.idempotency_keys
set status = 'completed', response_status = 200, response_body = '{"ok": 1}', completed_at = now(),
    locked_until = null
where key = 'key-1';
select results_eq(
  $$ select claim_id, stored_status, stored_response_status, stored_response_body
     from private.claim_idempotency_key(tests.get_supabase_uid('cr-buyer'), 'cr', 'key-1', repeat('a', 64), 10) $$,
  $$ values (null::bigint, 'completed', 200, '{"ok": 1}'::jsonb) $$,
  'a completed reply is reported for replay');
update public.idempotency_keys set expires_at = now() - interval '1 second' where key = 'key-1';
select ok(
  (select claim_id is not null
   from private.claim_idempotency_key(pg_temp.buyer(), 'cr', 'key-1', repeat('c', 64), 10)),
  'an expired reply is claimed afresh, by any request');
select results_eq(
  $$ select status, request_hash, response_status from public.idempotency_keys where key = 'key-1' $$,
  $$ values ('in_progress', repeat('c', 64), null::integer) $$,
  'the fresh claim replaced the expired reply');

-- reserve_payment_attempt ----------------------------------------------------------------------------
select throws_ok(
  $$ select * from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
       'a8000000-0000-4000-8000-000000000006', 'ch', 'store-cr', 'cr_never_created_00003') $$,
  'PT001', 'Order not found', 'prepare: someone else''s order is not found');
select throws_ok(
  $$ select * from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
       'a8000000-0000-4000-8000-0000000000ff', 'ch', 'store-cr', 'cr_never_created_00003') $$,
  'PT001', 'Order not found', 'prepare: a missing order is not found');
select throws_ok(
  $$ select * from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
       'a8000000-0000-4000-8000-000000000005', 'ch', 'store-cr', 'cr_never_created_00003') $$,
  'PT002', 'Order is paid', 'prepare: a paid order is not payable');
select throws_ok(
  $$ select * from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
       'a8000000-0000-4000-8000-000000000002', 'ch', 'store-cr', 'cr_never_created_00003') $$,
  'PT003', 'Payment cr_pending_payment_0001 for this order is in progress',
  'prepare: a pending payment blocks a second attempt');
select throws_ok(
  $$ select * from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
       'a8000000-0000-4000-8000-000000000003', 'ch', 'store-cr', 'cr_never_created_00003') $$,
  'PT003', 'Payment cr_open_account_000001 for this order is in progress',
  'prepare: an open virtual account blocks a second attempt');
select is((select count(*)::int from public.payments where id = 'cr_never_created_00003'), 0,
  'prepare: a refusal writes nothing');
select results_eq(
  $$ select id, order_name, total_amount, tax_free_amount, currency, pre_registered_at
     from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
       'a8000000-0000-4000-8000-000000000004', 'ch', 'store-cr', 'cr_expired_next_000001') $$,
  $$ values ('cr_expired_next_000001', 'CR expired account order', 5000::bigint, 0::bigint, 'KRW', null::timestamptz) $$,
  'prepare: an expired virtual account does not block; a new attempt is made');

select results_eq(
  $$ select id, order_name, total_amount, tax_free_amount, currency
     from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
       'a8000000-0000-4000-8000-000000000001', 'channel-a', 'store-cr', 'cr_fresh_attempt_00001') $$,
  $$ values ('cr_fresh_attempt_00001', 'CR fresh order', 12000::bigint, 2000::bigint, 'KRW') $$,
  'prepare: a new attempt copies the order''s name and amounts');
select results_eq(
  $$ select order_id, user_id, store_id, channel_key, status from public.payments where id = 'cr_fresh_attempt_00001' $$,
  $$ values ('a8000000-0000-4000-8000-000000000001'::uuid, tests.get_supabase_uid('cr-buyer'), 'store-cr',
             'channel-a', 'READY') $$,
  'prepare: the new attempt is READY, the caller''s, through the requested channel');
select results_eq(
  $$ select source, kind, to_status, detail from public.payment_events where payment_id = 'cr_fresh_attempt_00001' $$,
  $$ values ('prepare', 'created', 'READY', '{"orderId": "a8000000-0000-4000-8000-000000000001"}'::jsonb) $$,
  'prepare: the new attempt has its created event');
update public.payments set pre_registered_at = now() where id = 'cr_fresh_attempt_00001';
select results_eq(
  $$ select id, pre_registered_at is not null
     from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
       'a8000000-0000-4000-8000-000000000001', 'channel-b', 'store-cr', 'cr_never_created_00004') $$,
  $$ values ('cr_fresh_attempt_00001', true) $$,
  'prepare again: the open attempt is handed out again, with its pre-registration');
select is((select channel_key from public.payments where id = 'cr_fresh_attempt_00001'), 'channel-b',
  'prepare again: through the channel asked for now');
select is((select count(*)::int from public.payments where order_id = 'a8000000-0000-4000-8000-000000000001'), 1,
  'prepare again: no second attempt, no second event');

-- reserve_billing_attempt ----------------------------------------------------------------------------
-- by default the caller saw the key's current value and it opened
create function pg_temp.reserve(p_key text, p_order text, p_request text, p_new text, p_in_flight integer default 60,
                                p_refusal text default null, p_resealed text default null, p_seen text default '=')
returns table (outcome text, payment_id text, taken_over_from_window boolean, order_name text, total_amount bigint)
language sql as $$
  select outcome, payment_id, taken_over_from_window, order_name, total_amount
  from private.reserve_billing_attempt(
    tests.get_supabase_uid('cr-buyer'), p_key, p_order, p_request, 'store-cr', 'channel-billing', p_in_flight, p_new,
    case when p_seen = '=' then (select k.billing_key from public.billing_keys k where k.id = p_key::uuid) else p_seen end,
    p_refusal, p_resealed)
$$;

-- the window order's browser attempt (prepare's), still open
select lives_ok(
  $$ select * from private.reserve_payment_attempt(tests.get_supabase_uid('cr-buyer'),
       'a8000000-0000-4000-8000-000000000007', 'channel-window', 'store-cr', 'cr_window_attempt_0001') $$,
  'fixture: a browser attempt for the window order');

-- the key as the caller saw and opened it
select results_eq(
  $$ select outcome from pg_temp.reserve('b8000000-0000-4000-8000-000000000001',
       'a8000000-0000-4000-8000-000000000008', 'request-s', 'cr_never_created_00005', p_seen => 'an-older-value') $$,
  $$ values ('key_changed') $$,
  'pay: a key whose value changed since the caller read it is to be read again');
select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000008',
       'request-s', 'cr_never_created_00005', p_refusal => 'A saved card cannot be opened') $$,
  'PT005', 'A saved card cannot be opened', 'pay: a key that does not open is refused where the charge needs it');
select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000002',
       'request-s', 'cr_never_created_00005', p_refusal => 'A saved card cannot be opened') $$,
  'PT003', 'Payment cr_pending_payment_0001 for this order is in progress',
  'pay: ... after every other refusal');
select is((select count(*)::int from public.payments where order_id = 'a8000000-0000-4000-8000-000000000008'), 0,
  'pay: neither wrote anything');
select results_eq(
  $$ select outcome, payment_id, taken_over_from_window, order_name, total_amount
     from pg_temp.reserve('b8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000008',
       'request-s', 'cr_saved_card_attempt_1', p_resealed => 'cr-billing-key-1-resealed') $$,
  $$ values ('reserved', 'cr_saved_card_attempt_1', false, 'CR saved card order', 8000::bigint) $$,
  'pay: a key that opened: the attempt is reserved');
select is((select billing_key from public.billing_keys where id = 'b8000000-0000-4000-8000-000000000001'),
  'cr-billing-key-1-resealed', 'pay: the key re-sealed by the caller is stored with the reservation');
select results_eq(
  $$ select outcome from pg_temp.reserve('b8000000-0000-4000-8000-000000000001',
       'a8000000-0000-4000-8000-000000000008', 'request-s', 'cr_never_created_00005', p_seen => 'cr-billing-key-1',
       p_resealed => 'a-stale-reseal') $$,
  $$ values ('key_changed') $$,
  'pay: a re-seal of a value the row no longer holds is not stored');
select is((select billing_key from public.billing_keys where id = 'b8000000-0000-4000-8000-000000000001'),
  'cr-billing-key-1-resealed', 'pay: the row keeps the newer value');

select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000004', 'a8000000-0000-4000-8000-000000000001',
       'request-x', 'cr_never_created_00006') $$,
  'PT001', 'Billing key not found', 'pay: someone else''s key is not found');
select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000002', 'a8000000-0000-4000-8000-000000000001',
       'request-x', 'cr_never_created_00006') $$,
  'PT004', 'The billing key is deleted', 'pay: a deleted key is not active');
select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000003', 'a8000000-0000-4000-8000-000000000001',
       'request-x', 'cr_never_created_00006') $$,
  'PT004', 'The billing key was issued through another channel', 'pay: a key of another channel is not active');
select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000006',
       'request-x', 'cr_never_created_00006') $$,
  'PT001', 'Order not found', 'pay: someone else''s order is not found');
select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000005',
       'request-x', 'cr_never_created_00006') $$,
  'PT002', 'Order is paid', 'pay: a paid order is not payable');
select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000002',
       'request-x', 'cr_never_created_00006') $$,
  'PT003', 'Payment cr_pending_payment_0001 for this order is in progress', 'pay: a pending payment blocks');

-- taking over the window's attempt
select results_eq(
  $$ select outcome, payment_id, taken_over_from_window, order_name, total_amount
     from pg_temp.reserve('b8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000007',
       'request-w', 'cr_never_created_00007') $$,
  $$ values ('reserved', 'cr_window_attempt_0001', true, 'CR window order', 7000::bigint) $$,
  'pay: the window''s open attempt is taken over');
select results_eq(
  $$ select billing_channel_key, channel_key, billing_key_id from public.payments where id = 'cr_window_attempt_0001' $$,
  $$ values ('channel-billing', 'channel-window', null::uuid) $$,
  'pay: the charge''s channel is recorded beside the window''s');
select results_eq(
  $$ select kind, from_status, to_status, detail ->> 'requestKey' from public.payment_events
     where payment_id = 'cr_window_attempt_0001' and source = 'billing' $$,
  $$ values ('taken_over_by_saved_card', 'READY', 'READY', 'request-w') $$,
  'pay: the takeover is recorded once, with the request key');
select lives_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000007',
       'request-w', 'cr_never_created_00007') $$,
  'pay again: the same attempt');
select is((select count(*)::int from public.payment_events where payment_id = 'cr_window_attempt_0001' and source = 'billing'),
  1, 'pay again: no second takeover event');

-- a new attempt, then another key while it may be charging
select results_eq(
  $$ select outcome, payment_id, taken_over_from_window from pg_temp.reserve('b8000000-0000-4000-8000-000000000001',
       'a8000000-0000-4000-8000-000000000009', 'request-f', 'cr_in_flight_attempt_01') $$,
  $$ values ('reserved', 'cr_in_flight_attempt_01', false) $$,
  'pay: a new attempt for an order without one');
select results_eq(
  $$ select billing_key_id, billing_channel_key, channel_key, total_amount from public.payments
     where id = 'cr_in_flight_attempt_01' $$,
  $$ values ('b8000000-0000-4000-8000-000000000001'::uuid, 'channel-billing', null::text, 9000::bigint) $$,
  'pay: the new attempt carries the key and the billing channel');
select results_eq(
  $$ select kind, to_status, detail from public.payment_events where payment_id = 'cr_in_flight_attempt_01' $$,
  $$ values ('created', 'READY', jsonb_build_object('orderId', 'a8000000-0000-4000-8000-000000000009',
             'billingKeyId', 'b8000000-0000-4000-8000-000000000001', 'requestKey', 'request-f')) $$,
  'pay: its created event names the order, the key and the request');
select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000005', 'a8000000-0000-4000-8000-000000000009',
       'request-g', 'cr_never_created_00008') $$,
  'PT003', 'Payment cr_in_flight_attempt_01 for this order is in progress',
  'pay: another key''s attempt that may be charging right now blocks');
update public.payments set created_at = now() - interval '2 minutes' where id = 'cr_in_flight_attempt_01';
select results_eq(
  $$ select outcome, payment_id from pg_temp.reserve('b8000000-0000-4000-8000-000000000005',
       'a8000000-0000-4000-8000-000000000009', 'request-g', 'cr_second_key_attempt_1') $$,
  $$ values ('reserved', 'cr_second_key_attempt_1') $$,
  'pay: once past the in-flight window, another key gets an attempt of its own');

-- an earlier try of the same request that PortOne settled
update public.payments set status = 'PAID', paid_amount = 9000, paid_at = now() where id = 'cr_in_flight_attempt_01';
update public.orders set status = 'paid', paid_payment_id = 'cr_in_flight_attempt_01', paid_at = now()
where id = 'a8000000-0000-4000-8000-000000000009';
select results_eq(
  $$ select outcome, payment_id from pg_temp.reserve('b8000000-0000-4000-8000-000000000001',
       'a8000000-0000-4000-8000-000000000009', 'request-f', 'cr_never_created_00009') $$,
  $$ values ('settled', 'cr_in_flight_attempt_01') $$,
  'pay: a retry of the request whose charge went through is answered from that attempt, even on a paid order');
select results_eq(
  $$ select outcome, payment_id from pg_temp.reserve('b8000000-0000-4000-8000-000000000001',
       'a8000000-0000-4000-8000-000000000009', 'request-f', 'cr_never_created_00009',
       p_refusal => 'A saved card cannot be opened') $$,
  $$ values ('settled', 'cr_in_flight_attempt_01') $$,
  'pay: ... which needs no key, so one that does not open does not stop that answer');
select throws_ok(
  $$ select * from pg_temp.reserve('b8000000-0000-4000-8000-000000000001', 'a8000000-0000-4000-8000-000000000009',
       'request-h', 'cr_never_created_00009') $$,
  'PT002', 'Order is paid', 'pay: another request for the paid order is refused');
select is((select count(*)::int from public.payments where id like 'cr_never_created%'), 0,
  'no refusal or look-up created an attempt');

select * from finish();
rollback;
