-- Proves the persona matrix for the money records: payments, payment_cancellations, payment_events, for
-- anon, the authenticated owner, another authenticated user and service_role, each with
-- select / insert / update / delete.
--   payments,
--   payment_cancellations: anon 42501 everywhere; the owner reads exactly their own rows, the other user
--                          none of them; client writes 42501. service_role selects, inserts and updates
--                          but may not delete (no grant: money records are kept for good).
--   payment_events:        anon and authenticated 42501 everywhere (not even the owner reads it);
--                          service_role selects and inserts; update / delete / truncate 42501; and even
--                          the superuser is stopped by the append-only trigger.
begin;
set local search_path = public, extensions, tests;

select plan(57);

-- Fixtures (as the superuser) ------------------------------------------------------------------------
do $$
declare
  owner_id uuid := tests.create_supabase_user('pm2-owner');
  other_id uuid := tests.create_supabase_user('pm2-other');
begin
  insert into public.products (id, name, unit_price) values ('pm2-item', 'PM2 item', 10000);
  insert into public.orders (id, user_id, order_name, total_amount, currency) values
    ('a2000000-0000-4000-8000-000000000001', owner_id, 'PM2 item', 10000, 'KRW'),
    ('a2000000-0000-4000-8000-000000000002', other_id, 'PM2 item', 10000, 'KRW');
  insert into public.payments (id, order_id, user_id, store_id, status, total_amount, currency, paid_amount, paid_at)
  values
    ('pm2_owner_payment_0001', 'a2000000-0000-4000-8000-000000000001', owner_id, 'store-test', 'PAID', 10000, 'KRW', 10000, now()),
    ('pm2_other_payment_0001', 'a2000000-0000-4000-8000-000000000002', other_id, 'store-test', 'PAID', 10000, 'KRW', 10000, now());
  insert into public.payment_cancellations (id, payment_id, amount, reason, requester, requested_by, idempotency_key) values
    ('c2000000-0000-4000-8000-000000000001', 'pm2_owner_payment_0001', 1000, 'changed my mind', 'CUSTOMER', owner_id, 'pm2-idem-owner-000001'),
    ('c2000000-0000-4000-8000-000000000002', 'pm2_other_payment_0001', 1000, 'changed my mind', 'CUSTOMER', other_id, 'pm2-idem-other-000001');
  insert into public.payment_events (payment_id, source, kind, from_status, to_status) values
    ('pm2_owner_payment_0001', 'confirm', 'paid', 'READY', 'PAID');
end
$$;

-- ====================================================================================================
-- anon
-- ====================================================================================================
select tests.clear_authentication();

-- payments
select throws_ok($$ select id from public.payments $$,
  '42501', 'permission denied for table payments', 'anon: payments select is refused');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency)
     values ('pm2_anon_payment_0001', 'a2000000-0000-4000-8000-000000000001', tests.get_supabase_uid('pm2-owner'), 's', 1, 'KRW') $$,
  '42501', 'permission denied for table payments', 'anon: payments insert is refused');
select throws_ok($$ update public.payments set status = 'CANCELLED' where id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payments', 'anon: payments update is refused');
select throws_ok($$ delete from public.payments where id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payments', 'anon: payments delete is refused');

-- payment_cancellations
select throws_ok($$ select id from public.payment_cancellations $$,
  '42501', 'permission denied for table payment_cancellations', 'anon: payment_cancellations select is refused');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, amount, reason, requester)
     values ('pm2_owner_payment_0001', 1, 'x', 'CUSTOMER') $$,
  '42501', 'permission denied for table payment_cancellations', 'anon: payment_cancellations insert is refused');
select throws_ok(
  $$ update public.payment_cancellations set reason = 'x' where id = 'c2000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table payment_cancellations', 'anon: payment_cancellations update is refused');
select throws_ok(
  $$ delete from public.payment_cancellations where id = 'c2000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table payment_cancellations', 'anon: payment_cancellations delete is refused');

-- payment_events
select throws_ok($$ select id from public.payment_events $$,
  '42501', 'permission denied for table payment_events', 'anon: payment_events select is refused');
select throws_ok(
  $$ insert into public.payment_events (payment_id, source, kind) values ('pm2_owner_payment_0001', 'webhook', 'x') $$,
  '42501', 'permission denied for table payment_events', 'anon: payment_events insert is refused');
select throws_ok($$ update public.payment_events set kind = 'x' where payment_id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payment_events', 'anon: payment_events update is refused');
select throws_ok($$ delete from public.payment_events where payment_id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payment_events', 'anon: payment_events delete is refused');

-- ====================================================================================================
-- authenticated owner
-- ====================================================================================================
select tests.authenticate_as('pm2-owner');

-- payments
select results_eq($$ select id from public.payments $$, $$ values ('pm2_owner_payment_0001') $$,
  'owner: payments select returns exactly their own payment');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency)
     values ('pm2_owner_payment_0002', 'a2000000-0000-4000-8000-000000000001', tests.get_supabase_uid('pm2-owner'), 's', 1, 'KRW') $$,
  '42501', 'permission denied for table payments', 'owner: payments insert is refused');
select throws_ok($$ update public.payments set status = 'CANCELLED' where id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payments', 'owner: payments update of their own payment is refused');
select throws_ok($$ delete from public.payments where id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payments', 'owner: payments delete of their own payment is refused');

-- payment_cancellations
select results_eq($$ select id from public.payment_cancellations $$,
  $$ values ('c2000000-0000-4000-8000-000000000001'::uuid) $$,
  'owner: payment_cancellations select returns exactly the cancellation of their own payment');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, amount, reason, requester)
     values ('pm2_owner_payment_0001', 1, 'x', 'CUSTOMER') $$,
  '42501', 'permission denied for table payment_cancellations', 'owner: payment_cancellations insert is refused');
select throws_ok(
  $$ update public.payment_cancellations set reason = 'x' where id = 'c2000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table payment_cancellations', 'owner: payment_cancellations update is refused');
select throws_ok(
  $$ delete from public.payment_cancellations where id = 'c2000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table payment_cancellations', 'owner: payment_cancellations delete is refused');

-- payment_events: not even the owner of the payment reads its audit trail
select throws_ok($$ select id from public.payment_events $$,
  '42501', 'permission denied for table payment_events', 'owner: payment_events select is refused');
select throws_ok(
  $$ insert into public.payment_events (payment_id, source, kind) values ('pm2_owner_payment_0001', 'webhook', 'x') $$,
  '42501', 'permission denied for table payment_events', 'owner: payment_events insert is refused');
select throws_ok($$ update public.payment_events set kind = 'x' where payment_id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payment_events', 'owner: payment_events update is refused');
select throws_ok($$ delete from public.payment_events where payment_id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payment_events', 'owner: payment_events delete is refused');

-- ====================================================================================================
-- another authenticated user
-- ====================================================================================================
select tests.authenticate_as('pm2-other');

-- payments
select is_empty($$ select id from public.payments where id = 'pm2_owner_payment_0001' $$,
  'other user: the owner''s payment is not visible');
select results_eq($$ select id from public.payments $$, $$ values ('pm2_other_payment_0001') $$,
  'other user: payments select returns only their own payment');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency)
     values ('pm2_other_payment_0002', 'a2000000-0000-4000-8000-000000000001', tests.get_supabase_uid('pm2-owner'), 's', 1, 'KRW') $$,
  '42501', 'permission denied for table payments', 'other user: payments insert is refused');
select throws_ok($$ update public.payments set status = 'CANCELLED' where id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payments', 'other user: payments update is refused');
select throws_ok($$ delete from public.payments where id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payments', 'other user: payments delete is refused');

-- payment_cancellations
select is_empty(
  $$ select id from public.payment_cancellations where id = 'c2000000-0000-4000-8000-000000000001' $$,
  'other user: the cancellation of the owner''s payment is not visible');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, amount, reason, requester)
     values ('pm2_owner_payment_0001', 1, 'x', 'CUSTOMER') $$,
  '42501', 'permission denied for table payment_cancellations', 'other user: payment_cancellations insert is refused');
select throws_ok(
  $$ update public.payment_cancellations set reason = 'x' where id = 'c2000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table payment_cancellations', 'other user: payment_cancellations update is refused');
select throws_ok(
  $$ delete from public.payment_cancellations where id = 'c2000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table payment_cancellations', 'other user: payment_cancellations delete is refused');

-- payment_events
select throws_ok($$ select id from public.payment_events $$,
  '42501', 'permission denied for table payment_events', 'other user: payment_events select is refused');
select throws_ok(
  $$ insert into public.payment_events (payment_id, source, kind) values ('pm2_owner_payment_0001', 'webhook', 'x') $$,
  '42501', 'permission denied for table payment_events', 'other user: payment_events insert is refused');
select throws_ok($$ update public.payment_events set kind = 'x' where payment_id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payment_events', 'other user: payment_events update is refused');
select throws_ok($$ delete from public.payment_events where payment_id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payment_events', 'other user: payment_events delete is refused');

-- ====================================================================================================
-- service_role
-- ====================================================================================================
select tests.authenticate_as_service_role();

-- payments
select results_eq(
  $$ select id from public.payments where id like 'pm2\_%' order by id $$,
  $$ values ('pm2_other_payment_0001'), ('pm2_owner_payment_0001') $$,
  'service_role: payments select sees every user''s payments');
select lives_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency)
     values ('pm2_service_payment_01', 'a2000000-0000-4000-8000-000000000001', tests.get_supabase_uid('pm2-owner'),
             'store-test', 10000, 'KRW') $$,
  'service_role: payments insert is allowed');
select lives_ok(
  $$ update public.payments set status = 'PAY_PENDING' where id = 'pm2_service_payment_01' $$,
  'service_role: payments update is allowed');
select is((select status from public.payments where id = 'pm2_service_payment_01'), 'PAY_PENDING',
  'service_role: the payments update took effect');
select throws_ok($$ delete from public.payments where id = 'pm2_service_payment_01' $$,
  '42501', 'permission denied for table payments', 'service_role: payments delete is refused (money records are kept)');

-- payment_cancellations
select results_eq(
  $$ select id from public.payment_cancellations where payment_id like 'pm2\_%' order by id $$,
  $$ values ('c2000000-0000-4000-8000-000000000001'::uuid), ('c2000000-0000-4000-8000-000000000002'::uuid) $$,
  'service_role: payment_cancellations select sees every user''s cancellations');
select lives_ok(
  $$ insert into public.payment_cancellations (id, payment_id, amount, reason, requester)
     values ('c2000000-0000-4000-8000-000000000003', 'pm2_owner_payment_0001', 500, 'ops', 'ADMIN') $$,
  'service_role: payment_cancellations insert is allowed');
select lives_ok(
  $$ update public.payment_cancellations set status = 'SUCCEEDED', settled_at = now()
      where id = 'c2000000-0000-4000-8000-000000000003' $$,
  'service_role: payment_cancellations update is allowed');
select is((select status from public.payment_cancellations where id = 'c2000000-0000-4000-8000-000000000003'),
  'SUCCEEDED', 'service_role: the payment_cancellations update took effect');
select throws_ok($$ delete from public.payment_cancellations where id = 'c2000000-0000-4000-8000-000000000003' $$,
  '42501', 'permission denied for table payment_cancellations',
  'service_role: payment_cancellations delete is refused (money records are kept)');

-- payment_events
select results_eq(
  $$ select payment_id, kind from public.payment_events where payment_id like 'pm2\_%' $$,
  $$ values ('pm2_owner_payment_0001', 'paid') $$,
  'service_role: payment_events select is allowed');
select lives_ok(
  $$ insert into public.payment_events (payment_id, source, kind, from_status, to_status)
     values ('pm2_service_payment_01', 'prepare', 'pending', 'READY', 'PAY_PENDING') $$,
  'service_role: payment_events insert is allowed');
select throws_ok($$ update public.payment_events set kind = 'x' where payment_id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payment_events', 'service_role: payment_events update is refused');
select throws_ok($$ delete from public.payment_events where payment_id = 'pm2_owner_payment_0001' $$,
  '42501', 'permission denied for table payment_events', 'service_role: payment_events delete is refused');
select throws_ok($$ truncate public.payment_events $$,
  '42501', 'permission denied for table payment_events', 'service_role: payment_events truncate is refused');

-- ====================================================================================================
-- superuser: the append-only trigger, and the fixtures survived every refused write
-- ====================================================================================================
select tests.reset_role();

select throws_ok($$ update public.payment_events set kind = 'x' where payment_id = 'pm2_owner_payment_0001' $$,
  'P0001', 'payment_events is append-only', 'superuser: payment_events update is stopped by the append-only trigger');
select throws_ok($$ delete from public.payment_events where payment_id = 'pm2_owner_payment_0001' $$,
  'P0001', 'payment_events is append-only', 'superuser: payment_events delete is stopped by the append-only trigger');

select results_eq(
  $$ select id, status, paid_amount, cancelled_amount from public.payments where id like 'pm2\_%' order by id $$,
  $$ values ('pm2_other_payment_0001', 'PAID', 10000::bigint, 0::bigint),
            ('pm2_owner_payment_0001', 'PAID', 10000::bigint, 0::bigint),
            ('pm2_service_payment_01', 'PAY_PENDING', 0::bigint, 0::bigint) $$,
  'superuser: payments are as the allowed writes left them');
select results_eq(
  $$ select id, status, reason from public.payment_cancellations where payment_id like 'pm2\_%' order by id $$,
  $$ values ('c2000000-0000-4000-8000-000000000001'::uuid, 'REQUESTED', 'changed my mind'),
            ('c2000000-0000-4000-8000-000000000002'::uuid, 'REQUESTED', 'changed my mind'),
            ('c2000000-0000-4000-8000-000000000003'::uuid, 'SUCCEEDED', 'ops') $$,
  'superuser: payment_cancellations are as the allowed writes left them');
select results_eq(
  $$ select payment_id, kind from public.payment_events where payment_id like 'pm2\_%' order by id $$,
  $$ values ('pm2_owner_payment_0001', 'paid'), ('pm2_service_payment_01', 'pending') $$,
  'superuser: payment_events holds exactly the appended rows, unchanged');

select * from finish();
rollback;
