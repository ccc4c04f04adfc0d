-- Proves reconcile's progress table: one row per (store, reader), only the two known readers, a window that
-- never ends before it starts, and nothing readable or writable by an API role.
begin;
set local search_path = public, extensions, tests;

select plan(7);

select lives_ok(
  $$ insert into public.reconcile_progress (store_id, reader, cursor, window_from)
     values ('store-rp', 'payment_events', 'c1', now() - interval '3 days') $$,
  'the event checkpoint of a store is recorded'
);
select throws_ok(
  $$ insert into public.reconcile_progress (store_id, reader, window_from)
     values ('store-rp', 'payment_events', now()) $$,
  '23505', null, 'one checkpoint per store and reader'
);
select lives_ok(
  $$ insert into public.reconcile_progress (store_id, reader, window_from)
     values ('store-other', 'payment_events', now()) $$,
  'another store keeps its own'
);
select throws_ok(
  $$ insert into public.reconcile_progress (store_id, reader, window_from)
     values ('store-rp', 'something_else', now()) $$,
  '23514', null, 'only the known readers'
);
select throws_ok(
  $$ insert into public.reconcile_progress (store_id, reader, window_from, window_until)
     values ('store-rp', 'payments_scan', now(), now() - interval '1 day') $$,
  '23514', null, 'a scan window never ends before it starts'
);
select is(
  (select count(*)::int from information_schema.role_table_grants
    where table_schema = 'public' and table_name = 'reconcile_progress'
      and grantee in ('anon', 'authenticated')),
  0,
  'no API role holds any privilege on reconcile_progress'
);
select is(
  (select count(*)::int from pg_indexes
    where schemaname = 'public' and indexname = 'payments_waiting_checked_idx'),
  1,
  'waiting payments are read least-recently-checked first by index'
);

select * from finish();
rollback;
