-- Proves the persona matrix for the service-only tables webhook_logs and idempotency_keys: anon, the
-- authenticated owner (of the idempotency key) and another authenticated user get 42501 for select,
-- insert, update and delete (the tables are invisible to the API roles, even one's own rows);
-- service_role may do everything.
begin;
set local search_path = public, extensions, tests;

select plan(38);

-- Fixtures (as the superuser) ------------------------------------------------------------------------
do $$
declare
  owner_id uuid := tests.create_supabase_user('pm3-owner');
begin
  perform tests.create_supabase_user('pm3-other');
  insert into public.webhook_logs (webhook_id, event_type, payment_id, payload, payload_sha256)
  values ('pm3-webhook-0001', 'Transaction.Paid', 'pm3_payment_000001', '{"type": "Transaction.Paid"}',
          repeat('a', 64));
  insert into public.idempotency_keys (user_id, route, key, request_hash)
  values (owner_id, 'payments-prepare', 'pm3-key-0001', repeat('b', 64));
end
$$;

-- ====================================================================================================
-- anon, owner and other user: the same refusals for each
-- ====================================================================================================
select tests.clear_authentication();

select throws_ok($$ select id from public.webhook_logs $$,
  '42501', 'permission denied for table webhook_logs', 'anon: webhook_logs select is refused');
select throws_ok(
  $$ insert into public.webhook_logs (webhook_id, payload, payload_sha256) values ('pm3-anon', '{}', repeat('c', 64)) $$,
  '42501', 'permission denied for table webhook_logs', 'anon: webhook_logs insert is refused');
select throws_ok($$ update public.webhook_logs set status = 'processed' where webhook_id = 'pm3-webhook-0001' $$,
  '42501', 'permission denied for table webhook_logs', 'anon: webhook_logs update is refused');
select throws_ok($$ delete from public.webhook_logs where webhook_id = 'pm3-webhook-0001' $$,
  '42501', 'permission denied for table webhook_logs', 'anon: webhook_logs delete is refused');

select throws_ok($$ select id from public.idempotency_keys $$,
  '42501', 'permission denied for table idempotency_keys', 'anon: idempotency_keys select is refused');
select throws_ok(
  $$ insert into public.idempotency_keys (user_id, route, key, request_hash)
     values (tests.get_supabase_uid('pm3-owner'), 'r', 'k', repeat('c', 64)) $$,
  '42501', 'permission denied for table idempotency_keys', 'anon: idempotency_keys insert is refused');
select throws_ok($$ update public.idempotency_keys set status = 'completed', response_status = 200 where key = 'pm3-key-0001' $$,
  '42501', 'permission denied for table idempotency_keys', 'anon: idempotency_keys update is refused');
select throws_ok($$ delete from public.idempotency_keys where key = 'pm3-key-0001' $$,
  '42501', 'permission denied for table idempotency_keys', 'anon: idempotency_keys delete is refused');

select tests.authenticate_as('pm3-owner');

select throws_ok($$ select id from public.webhook_logs $$,
  '42501', 'permission denied for table webhook_logs', 'owner: webhook_logs select is refused');
select throws_ok(
  $$ insert into public.webhook_logs (webhook_id, payload, payload_sha256) values ('pm3-owner', '{}', repeat('c', 64)) $$,
  '42501', 'permission denied for table webhook_logs', 'owner: webhook_logs insert is refused');
select throws_ok($$ update public.webhook_logs set status = 'processed' where webhook_id = 'pm3-webhook-0001' $$,
  '42501', 'permission denied for table webhook_logs', 'owner: webhook_logs update is refused');
select throws_ok($$ delete from public.webhook_logs where webhook_id = 'pm3-webhook-0001' $$,
  '42501', 'permission denied for table webhook_logs', 'owner: webhook_logs delete is refused');

select throws_ok($$ select id from public.idempotency_keys $$,
  '42501', 'permission denied for table idempotency_keys', 'owner: idempotency_keys select (even their own key) is refused');
select throws_ok(
  $$ insert into public.idempotency_keys (user_id, route, key, request_hash)
     values (tests.get_supabase_uid('pm3-owner'), 'r', 'k', repeat('c', 64)) $$,
  '42501', 'permission denied for table idempotency_keys', 'owner: idempotency_keys insert is refused');
select throws_ok($$ update public.idempotency_keys set status = 'completed', response_status = 200 where key = 'pm3-key-0001' $$,
  '42501', 'permission denied for table idempotency_keys', 'owner: idempotency_keys update is refused');
select throws_ok($$ delete from public.idempotency_keys where key = 'pm3-key-0001' $$,
  '42501', 'permission denied for table idempotency_keys', 'owner: idempotency_keys delete is refused');

select tests.authenticate_as('pm3-other');

select throws_ok($$ select id from public.webhook_logs $$,
  '42501', 'permission denied for table webhook_logs', 'other user: webhook_logs select is refused');
select throws_ok(
  $$ insert into public.webhook_logs (webhook_id, payload, payload_sha256) values ('pm3-other', '{}', repeat('c', 64)) $$,
  '42501', 'permission denied for table webhook_logs', 'other user: webhook_logs insert is refused');
select throws_ok($$ update public.webhook_logs set status = 'processed' where webhook_id = 'pm3-webhook-0001' $$,
  '42501', 'permission denied for table webhook_logs', 'other user: webhook_logs update is refused');
select throws_ok($$ delete from public.webhook_logs where webhook_id = 'pm3-webhook-0001' $$,
  '42501', 'permission denied for table webhook_logs', 'other user: webhook_logs delete is refused');

select throws_ok($$ select id from public.idempotency_keys $$,
  '42501', 'permission denied for table idempotency_keys', 'other user: idempotency_keys select is refused');
select throws_ok(
  $$ insert into public.idempotency_keys (user_id, route, key, request_hash)
     values (tests.get_supabase_uid('pm3-other'), 'r', 'k', repeat('c', 64)) $$,
  '42501', 'permission denied for table idempotency_keys', 'other user: idempotency_keys insert is refused');
select throws_ok($$ update public.idempotency_keys set status = 'completed', response_status = 200 where key = 'pm3-key-0001' $$,
  '42501', 'permission denied for table idempotency_keys', 'other user: idempotency_keys update is refused');
select throws_ok($$ delete from public.idempotency_keys where key = 'pm3-key-0001' $$,
  '42501', 'permission denied for table idempotency_keys', 'other user: idempotency_keys delete is refused');

-- ====================================================================================================
-- service_role: everything
-- ====================================================================================================
select tests.authenticate_as_service_role();

-- webhook_logs
select results_eq($$ select webhook_id from public.webhook_logs where webhook_id like 'pm3-%' $$,
  $$ values ('pm3-webhook-0001') $$, 'service_role: webhook_logs select is allowed');
select lives_ok(
  $$ insert into public.webhook_logs (webhook_id, payload, payload_sha256) values ('pm3-webhook-0002', '{}', repeat('c', 64)) $$,
  'service_role: webhook_logs insert is allowed');
select lives_ok(
  $$ update public.webhook_logs set status = 'processed', processed_at = now() where webhook_id = 'pm3-webhook-0001' $$,
  'service_role: webhook_logs update is allowed');
select is((select status from public.webhook_logs where webhook_id = 'pm3-webhook-0001'), 'processed',
  'service_role: the webhook_logs update took effect');
select lives_ok($$ delete from public.webhook_logs where webhook_id = 'pm3-webhook-0002' $$,
  'service_role: webhook_logs delete is allowed');
select results_eq($$ select webhook_id from public.webhook_logs where webhook_id like 'pm3-%' $$,
  $$ values ('pm3-webhook-0001') $$, 'service_role: the webhook_logs delete removed exactly that row');

-- idempotency_keys
select results_eq($$ select key from public.idempotency_keys where key like 'pm3-%' $$,
  $$ values ('pm3-key-0001') $$, 'service_role: idempotency_keys select is allowed');
select lives_ok(
  $$ insert into public.idempotency_keys (user_id, route, key, request_hash)
     values (tests.get_supabase_uid('pm3-other'), 'payments-prepare', 'pm3-key-0002', repeat('c', 64)) $$,
  'service_role: idempotency_keys insert is allowed');
select lives_ok(
  $$ update public.idempotency_keys set status = 'completed', response_status = 201, response_body = '{}',
            completed_at = now()
      where key = 'pm3-key-0001' $$,
  'service_role: idempotency_keys update is allowed');
select is((select response_status from public.idempotency_keys where key = 'pm3-key-0001'), 201,
  'service_role: the idempotency_keys update took effect');
select lives_ok($$ delete from public.idempotency_keys where key = 'pm3-key-0002' $$,
  'service_role: idempotency_keys delete is allowed');
select results_eq($$ select key from public.idempotency_keys where key like 'pm3-%' $$,
  $$ values ('pm3-key-0001') $$, 'service_role: the idempotency_keys delete removed exactly that row');

-- ====================================================================================================
-- superuser: the refused writes left the rows as service_role set them
-- ====================================================================================================
select tests.reset_role();

select results_eq(
  $$ select webhook_id, status from public.webhook_logs where webhook_id like 'pm3-%' $$,
  $$ values ('pm3-webhook-0001', 'processed') $$,
  'superuser: webhook_logs holds exactly the service_role result');
select results_eq(
  $$ select key, status, response_status from public.idempotency_keys where key like 'pm3-%' $$,
  $$ values ('pm3-key-0001', 'completed', 201) $$,
  'superuser: idempotency_keys holds exactly the service_role result');

select * from finish();
rollback;
