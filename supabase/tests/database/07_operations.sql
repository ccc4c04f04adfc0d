-- Proves that the operations tables (reconcile_runs, operation_alerts) are as closed as the webhook inbox:
-- anon and any signed-in user (an admin too: admin views go through the `admin` function, never through
-- the tables) are refused every read and write; service_role may read and write what the function needs;
-- the operations helpers in `private` cannot be called by API roles.
begin;
set local search_path = public, extensions, tests;

select plan(17);

do $$
begin
  perform tests.create_supabase_user('ops-user');
  perform tests.create_supabase_user('ops-admin', null, '{"payments_admin": true}');
  insert into public.reconcile_runs (store_id, started_at, report)
  values ('store-ops', now() - interval '1 minute', '{"window": {}}');
  insert into public.operation_alerts (problem_key, kind, summary) values ('webhook_failed:ops-1', 'webhook_failed', 'x');
end
$$;

select tests.clear_authentication();
select throws_ok($$ select id from public.reconcile_runs $$, '42501', null, 'anon: reconcile_runs select is refused');
select throws_ok($$ select problem_key from public.operation_alerts $$, '42501', null,
  'anon: operation_alerts select is refused');

select tests.authenticate_as('ops-user');
select throws_ok($$ select id from public.reconcile_runs $$, '42501', null, 'user: reconcile_runs select is refused');
select throws_ok($$ select problem_key from public.operation_alerts $$, '42501', null,
  'user: operation_alerts select is refused');
select throws_ok($$ insert into public.operation_alerts (problem_key, kind, summary) values ('k', 'drift_fixed', 's') $$,
  '42501', null, 'user: operation_alerts insert is refused');
select throws_ok($$ select private.prune_idempotency_keys() $$, '42501', null,
  'user: private.prune_idempotency_keys cannot be called');
select throws_ok($$ select private.schedule_operations() $$, '42501', null,
  'user: private.schedule_operations cannot be called');
select throws_ok($$ select private.vault_secret('payments_reconcile_secret') $$, '42501', null,
  'user: private.vault_secret cannot be called');

select tests.authenticate_as('ops-admin');
select throws_ok($$ select id from public.reconcile_runs $$, '42501', null, 'admin: reconcile_runs select is refused');
select throws_ok($$ select problem_key from public.operation_alerts $$, '42501', null,
  'admin: operation_alerts select is refused');
select throws_ok($$ update public.operation_alerts set alerted_at = now() $$, '42501', null,
  'admin: operation_alerts update is refused');

select tests.authenticate_as_service_role();
select lives_ok($$ insert into public.reconcile_runs (store_id, started_at, report) values ('store-ops', now(), '{}') $$,
  'service_role: reconcile_runs insert is allowed');
select lives_ok($$ update public.operation_alerts set alerted_at = now() where problem_key = 'webhook_failed:ops-1' $$,
  'service_role: operation_alerts update is allowed');
select throws_ok($$ update public.reconcile_runs set report = '{}' $$, '42501', null,
  'service_role: a recorded reconcile run is never rewritten');
select throws_ok(
  $$ insert into public.operation_alerts (problem_key, kind, summary) values ('k2', 'something_else', 's') $$,
  '23514', null, 'operation_alerts.kind is a closed set');

select tests.reset_role();
select is((select count(*)::int from public.operation_alerts where alerted_at is not null and problem_key = 'webhook_failed:ops-1'),
  1, 'superuser: the service_role update took effect');
select ok(not has_function_privilege('service_role', 'private.schedule_operations()', 'execute'),
  'service_role cannot reschedule jobs');

select * from finish();
rollback;
