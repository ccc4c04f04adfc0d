-- Proves the payment status machine (trigger private.enforce_payment_rules on public.payments):
--   * every legal transition is accepted, including X -> X for each of the 7 statuses, and an exhaustive
--     sweep of all 49 (from, to) pairs accepts exactly the legal ones;
--   * a sample of illegal transitions raises 'illegal payment status transition <FROM> -> <TO>' (P0001);
--   * id, order_id, user_id, store_id, total_amount, tax_free_amount and currency never change;
--   * cancelled_amount never decreases; the status_changed_at watermark never moves back (nor to null);
--   * updated_at is stamped by the trigger;
--   * a status outside the 7 fails the check constraint on insert (23514) and the machine on update.
-- Every transition runs on a fresh payment whose amounts satisfy the table checks before and after
-- (paid_amount set on PAID, cancelled_amount <= paid_amount), so only the machine can refuse it.
begin;
set local search_path = public, extensions, tests;

select plan(62);

-- Fixtures and helpers (as the superuser) ------------------------------------------------------------
do $$
declare
  buyer uuid := tests.create_supabase_user('sm-buyer');
begin
  insert into public.orders (id, user_id, order_name, total_amount, currency) values
    ('e3000000-0000-4000-8000-000000000001', buyer, 'SM order', 10000, 'KRW'),
    ('e3000000-0000-4000-8000-000000000002', buyer, 'SM other order', 10000, 'KRW');
end
$$;

-- A new payment of the fixture order in the given status, with amounts valid for that status.
create function pg_temp.sm_payment(p_status text) returns text
language plpgsql as $$
declare
  new_id text := 'sm_' || replace(gen_random_uuid()::text, '-', '');
begin
  insert into public.payments
    (id, order_id, user_id, store_id, status, total_amount, tax_free_amount, currency,
     paid_amount, cancelled_amount, status_changed_at)
  values
    (new_id, 'e3000000-0000-4000-8000-000000000001', tests.get_supabase_uid('sm-buyer'), 'store-test',
     p_status, 10000, 0, 'KRW',
     case when p_status in ('PAID', 'PARTIAL_CANCELLED', 'CANCELLED') then 10000 else 0 end,
     case p_status when 'PARTIAL_CANCELLED' then 4000 when 'CANCELLED' then 10000 else 0 end,
     '2026-01-01 00:00:00+00');
  return new_id;
end
$$;

-- The update moving a new payment in status p_from to p_to, with amounts that keep every check true.
create function pg_temp.sm_update_sql(p_from text, p_to text) returns text
language sql as $$
  select format(
    $f$update public.payments
          set status = %1$L,
              paid_amount = case when %1$L in ('PAID', 'PARTIAL_CANCELLED') then total_amount else paid_amount end,
              cancelled_amount = case %1$L when 'PARTIAL_CANCELLED' then greatest(cancelled_amount, 4000)
                                           when 'CANCELLED' then paid_amount
                                           else cancelled_amount end,
              status_changed_at = status_changed_at + interval '1 minute'
        where id = %2$L$f$,
    p_to, pg_temp.sm_payment(p_from))
$$;

-- Runs that transition; returns the stored status afterwards, or the error it raised.
create function pg_temp.sm_try(p_from text, p_to text) returns text
language plpgsql as $$
declare
  sql text := pg_temp.sm_update_sql(p_from, p_to);
  moved integer;
begin
  execute sql;
  get diagnostics moved = row_count;
  if moved <> 1 then
    return 'updated ' || moved || ' rows';
  end if;
  return (select p.status from public.payments p where p.id = substring(sql from 'where id = ''([^'']+)'''));
exception when others then
  return 'error ' || sqlstate || ': ' || sqlerrm;
end
$$;

-- ====================================================================================================
-- legal transitions
-- ====================================================================================================
select is(pg_temp.sm_try('READY', 'PAY_PENDING'), 'PAY_PENDING', 'READY -> PAY_PENDING is legal');
select is(pg_temp.sm_try('READY', 'VIRTUAL_ACCOUNT_ISSUED'), 'VIRTUAL_ACCOUNT_ISSUED', 'READY -> VIRTUAL_ACCOUNT_ISSUED is legal');
select is(pg_temp.sm_try('READY', 'PAID'), 'PAID', 'READY -> PAID is legal');
select is(pg_temp.sm_try('READY', 'FAILED'), 'FAILED', 'READY -> FAILED is legal');
select is(pg_temp.sm_try('READY', 'CANCELLED'), 'CANCELLED', 'READY -> CANCELLED is legal');
select is(pg_temp.sm_try('READY', 'PARTIAL_CANCELLED'), 'PARTIAL_CANCELLED', 'READY -> PARTIAL_CANCELLED is legal (paid and partly refunded before our first sync)');

select is(pg_temp.sm_try('PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED'), 'VIRTUAL_ACCOUNT_ISSUED', 'PAY_PENDING -> VIRTUAL_ACCOUNT_ISSUED is legal');
select is(pg_temp.sm_try('PAY_PENDING', 'PAID'), 'PAID', 'PAY_PENDING -> PAID is legal');
select is(pg_temp.sm_try('PAY_PENDING', 'FAILED'), 'FAILED', 'PAY_PENDING -> FAILED is legal');
select is(pg_temp.sm_try('PAY_PENDING', 'CANCELLED'), 'CANCELLED', 'PAY_PENDING -> CANCELLED is legal');
select is(pg_temp.sm_try('PAY_PENDING', 'PARTIAL_CANCELLED'), 'PARTIAL_CANCELLED', 'PAY_PENDING -> PARTIAL_CANCELLED is legal (skips PAID)');

select is(pg_temp.sm_try('VIRTUAL_ACCOUNT_ISSUED', 'PAID'), 'PAID', 'VIRTUAL_ACCOUNT_ISSUED -> PAID is legal');
select is(pg_temp.sm_try('VIRTUAL_ACCOUNT_ISSUED', 'FAILED'), 'FAILED', 'VIRTUAL_ACCOUNT_ISSUED -> FAILED is legal');
select is(pg_temp.sm_try('VIRTUAL_ACCOUNT_ISSUED', 'CANCELLED'), 'CANCELLED', 'VIRTUAL_ACCOUNT_ISSUED -> CANCELLED is legal');
select is(pg_temp.sm_try('VIRTUAL_ACCOUNT_ISSUED', 'PARTIAL_CANCELLED'), 'PARTIAL_CANCELLED', 'VIRTUAL_ACCOUNT_ISSUED -> PARTIAL_CANCELLED is legal (skips PAID)');

select is(pg_temp.sm_try('FAILED', 'PAY_PENDING'), 'PAY_PENDING', 'FAILED -> PAY_PENDING is legal (retry)');
select is(pg_temp.sm_try('FAILED', 'VIRTUAL_ACCOUNT_ISSUED'), 'VIRTUAL_ACCOUNT_ISSUED', 'FAILED -> VIRTUAL_ACCOUNT_ISSUED is legal (retry)');
select is(pg_temp.sm_try('FAILED', 'PAID'), 'PAID', 'FAILED -> PAID is legal (retry)');
select is(pg_temp.sm_try('FAILED', 'PARTIAL_CANCELLED'), 'PARTIAL_CANCELLED', 'FAILED -> PARTIAL_CANCELLED is legal (retry, skips PAID)');
select is(pg_temp.sm_try('FAILED', 'CANCELLED'), 'CANCELLED', 'FAILED -> CANCELLED is legal (retry, skips PAID)');

select is(pg_temp.sm_try('PAID', 'PARTIAL_CANCELLED'), 'PARTIAL_CANCELLED', 'PAID -> PARTIAL_CANCELLED is legal');
select is(pg_temp.sm_try('PAID', 'CANCELLED'), 'CANCELLED', 'PAID -> CANCELLED is legal');

select is(pg_temp.sm_try('PARTIAL_CANCELLED', 'CANCELLED'), 'CANCELLED', 'PARTIAL_CANCELLED -> CANCELLED is legal');

-- same status: a fresher snapshot of the same state
select is(pg_temp.sm_try('READY', 'READY'), 'READY', 'READY -> READY is legal');
select is(pg_temp.sm_try('PAY_PENDING', 'PAY_PENDING'), 'PAY_PENDING', 'PAY_PENDING -> PAY_PENDING is legal');
select is(pg_temp.sm_try('VIRTUAL_ACCOUNT_ISSUED', 'VIRTUAL_ACCOUNT_ISSUED'), 'VIRTUAL_ACCOUNT_ISSUED', 'VIRTUAL_ACCOUNT_ISSUED -> VIRTUAL_ACCOUNT_ISSUED is legal');
select is(pg_temp.sm_try('PAID', 'PAID'), 'PAID', 'PAID -> PAID is legal');
select is(pg_temp.sm_try('FAILED', 'FAILED'), 'FAILED', 'FAILED -> FAILED is legal');
select is(pg_temp.sm_try('PARTIAL_CANCELLED', 'PARTIAL_CANCELLED'), 'PARTIAL_CANCELLED', 'PARTIAL_CANCELLED -> PARTIAL_CANCELLED is legal');
select is(pg_temp.sm_try('CANCELLED', 'CANCELLED'), 'CANCELLED', 'CANCELLED -> CANCELLED is legal');

select lives_ok(
  $$ update public.payments set cancelled_amount = 7000, status_changed_at = status_changed_at + interval '1 hour'
      where id = pg_temp.sm_payment('PARTIAL_CANCELLED') $$,
  'a second partial cancel (PARTIAL_CANCELLED, cancelled_amount 4000 -> 7000) is accepted'
);

-- ====================================================================================================
-- exhaustive sweep: of all 49 pairs, exactly the legal ones are accepted
-- ====================================================================================================
select is_empty(
  $$ with statuses(s) as (
       values ('READY'), ('PAY_PENDING'), ('VIRTUAL_ACCOUNT_ISSUED'), ('PAID'), ('FAILED'),
              ('PARTIAL_CANCELLED'), ('CANCELLED')
     ),
     legal(f, t) as (
       values ('READY', 'PAY_PENDING'), ('READY', 'VIRTUAL_ACCOUNT_ISSUED'), ('READY', 'PAID'),
              ('READY', 'FAILED'), ('READY', 'CANCELLED'), ('READY', 'PARTIAL_CANCELLED'),
              ('PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED'), ('PAY_PENDING', 'PAID'), ('PAY_PENDING', 'FAILED'),
              ('PAY_PENDING', 'CANCELLED'), ('PAY_PENDING', 'PARTIAL_CANCELLED'),
              ('VIRTUAL_ACCOUNT_ISSUED', 'PAID'), ('VIRTUAL_ACCOUNT_ISSUED', 'FAILED'),
              ('VIRTUAL_ACCOUNT_ISSUED', 'CANCELLED'), ('VIRTUAL_ACCOUNT_ISSUED', 'PARTIAL_CANCELLED'),
              ('FAILED', 'PAY_PENDING'), ('FAILED', 'VIRTUAL_ACCOUNT_ISSUED'), ('FAILED', 'PAID'),
              ('FAILED', 'PARTIAL_CANCELLED'), ('FAILED', 'CANCELLED'),
              ('PAID', 'PARTIAL_CANCELLED'), ('PAID', 'CANCELLED'),
              ('PARTIAL_CANCELLED', 'CANCELLED')
       union all
       select s, s from statuses
     ),
     tried as (
       select f.s as f, t.s as t, pg_temp.sm_try(f.s, t.s) as result
         from statuses f cross join statuses t
     )
     select f || ' -> ' || t || ': ' || result
       from tried
      where (f, t) in (select f, t from legal) and result <> t
         or (f, t) not in (select f, t from legal)
            and result <> format('error P0001: illegal payment status transition %s -> %s', f, t) $$,
  'all 49 (from, to) pairs: legal ones land in the new status, every other one is refused by the machine'
);

-- ====================================================================================================
-- illegal transitions (sample)
-- ====================================================================================================
select throws_ok(pg_temp.sm_update_sql('PAID', 'READY'),
  'P0001', 'illegal payment status transition PAID -> READY', 'PAID -> READY is refused');
select throws_ok(pg_temp.sm_update_sql('CANCELLED', 'PAID'),
  'P0001', 'illegal payment status transition CANCELLED -> PAID', 'CANCELLED -> PAID is refused');
select throws_ok(pg_temp.sm_update_sql('CANCELLED', 'PARTIAL_CANCELLED'),
  'P0001', 'illegal payment status transition CANCELLED -> PARTIAL_CANCELLED', 'CANCELLED -> PARTIAL_CANCELLED is refused');
select throws_ok(pg_temp.sm_update_sql('CANCELLED', 'READY'),
  'P0001', 'illegal payment status transition CANCELLED -> READY', 'CANCELLED -> READY is refused');
select throws_ok(pg_temp.sm_update_sql('PARTIAL_CANCELLED', 'PAID'),
  'P0001', 'illegal payment status transition PARTIAL_CANCELLED -> PAID', 'PARTIAL_CANCELLED -> PAID is refused');
select throws_ok(pg_temp.sm_update_sql('PARTIAL_CANCELLED', 'READY'),
  'P0001', 'illegal payment status transition PARTIAL_CANCELLED -> READY', 'PARTIAL_CANCELLED -> READY is refused');
select throws_ok(pg_temp.sm_update_sql('VIRTUAL_ACCOUNT_ISSUED', 'READY'),
  'P0001', 'illegal payment status transition VIRTUAL_ACCOUNT_ISSUED -> READY', 'VIRTUAL_ACCOUNT_ISSUED -> READY is refused');
select throws_ok(pg_temp.sm_update_sql('PAY_PENDING', 'READY'),
  'P0001', 'illegal payment status transition PAY_PENDING -> READY', 'PAY_PENDING -> READY is refused');
select throws_ok(pg_temp.sm_update_sql('FAILED', 'READY'),
  'P0001', 'illegal payment status transition FAILED -> READY', 'FAILED -> READY is refused (a retry moves forward)');
select throws_ok(pg_temp.sm_update_sql('PAID', 'FAILED'),
  'P0001', 'illegal payment status transition PAID -> FAILED', 'PAID -> FAILED is refused');
select throws_ok(pg_temp.sm_update_sql('PAID', 'VIRTUAL_ACCOUNT_ISSUED'),
  'P0001', 'illegal payment status transition PAID -> VIRTUAL_ACCOUNT_ISSUED', 'PAID -> VIRTUAL_ACCOUNT_ISSUED is refused');

-- ====================================================================================================
-- identity, order and requested amount never change
-- ====================================================================================================
select throws_ok(
  format($$ update public.payments set order_id = 'e3000000-0000-4000-8000-000000000002' where id = %L $$, pg_temp.sm_payment('READY')),
  'P0001', 'a payment''s identity, order and requested amount never change', 'order_id cannot change');
select throws_ok(
  format($$ update public.payments set total_amount = 9000 where id = %L $$, pg_temp.sm_payment('READY')),
  'P0001', 'a payment''s identity, order and requested amount never change', 'total_amount cannot change');
select throws_ok(
  format($$ update public.payments set currency = 'USD' where id = %L $$, pg_temp.sm_payment('READY')),
  'P0001', 'a payment''s identity, order and requested amount never change', 'currency cannot change');
select throws_ok(
  format($$ update public.payments set tax_free_amount = 100 where id = %L $$, pg_temp.sm_payment('READY')),
  'P0001', 'a payment''s identity, order and requested amount never change', 'tax_free_amount cannot change');
select throws_ok(
  format($$ update public.payments set store_id = 'another-store' where id = %L $$, pg_temp.sm_payment('READY')),
  'P0001', 'a payment''s identity, order and requested amount never change', 'store_id cannot change');
select throws_ok(
  format($$ update public.payments set user_id = tests.create_supabase_user('sm-someone-else') where id = %L $$, pg_temp.sm_payment('READY')),
  'P0001', 'a payment''s identity, order and requested amount never change', 'user_id cannot change');
select throws_ok(
  format($$ update public.payments set id = 'sm_renamed_payment_id_0001' where id = %L $$, pg_temp.sm_payment('READY')),
  'P0001', 'a payment''s identity, order and requested amount never change', 'id cannot change');

-- ====================================================================================================
-- cancelled amount and watermark
-- ====================================================================================================
select throws_ok(
  format($$ update public.payments set cancelled_amount = 3000 where id = %L $$, pg_temp.sm_payment('PARTIAL_CANCELLED')),
  'P0001', 'cancelled amount never decreases', 'cancelled_amount cannot decrease (4000 -> 3000)');
select throws_ok(
  format($$ update public.payments set status = 'PARTIAL_CANCELLED', cancelled_amount = 0 where id = %L $$, pg_temp.sm_payment('PARTIAL_CANCELLED')),
  'P0001', 'cancelled amount never decreases', 'cancelled_amount cannot drop back to 0');
select throws_ok(
  format($$ update public.payments set status_changed_at = status_changed_at - interval '1 second' where id = %L $$, pg_temp.sm_payment('PAID')),
  'P0001', 'the status watermark never moves back', 'status_changed_at cannot move back');
select throws_ok(
  format($$ update public.payments set status_changed_at = null where id = %L $$, pg_temp.sm_payment('PAID')),
  'P0001', 'the status watermark never moves back', 'status_changed_at cannot be cleared once set');
select lives_ok(
  format($$ update public.payments set synced_at = now() where id = %L $$, pg_temp.sm_payment('PAID')),
  'an update keeping the same watermark is accepted');

-- The watermark may be set for the first time on a payment that had none.
insert into public.payments (id, order_id, user_id, store_id, total_amount, currency)
values ('sm_no_watermark_payment', 'e3000000-0000-4000-8000-000000000001', tests.get_supabase_uid('sm-buyer'),
        'store-test', 10000, 'KRW');
select lives_ok(
  $$ update public.payments set status = 'PAID', paid_amount = 10000, status_changed_at = '2026-02-01 00:00:00+00'
      where id = 'sm_no_watermark_payment' $$,
  'a first watermark may be set on a payment that had none');
select is(
  (select status_changed_at from public.payments where id = 'sm_no_watermark_payment'),
  '2026-02-01 00:00:00+00'::timestamptz,
  'the first watermark was stored');

-- ====================================================================================================
-- updated_at is stamped by the trigger
-- ====================================================================================================
create temp table sm_stamp as select pg_temp.sm_payment('READY') as id;
update public.payments set updated_at = now() - interval '1 day' where id = (select id from sm_stamp);
select is(
  (select updated_at from public.payments where id = (select id from sm_stamp)),
  now(),
  'an update stamps updated_at with the transaction time, whatever the update sets'
);

-- ====================================================================================================
-- a status outside the seven
-- ====================================================================================================
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, status, total_amount, currency)
     values ('sm_bad_status_payment_01', 'e3000000-0000-4000-8000-000000000001', tests.get_supabase_uid('sm-buyer'),
             'store-test', 'REFUNDED', 10000, 'KRW') $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_status_check"',
  'inserting a status outside the 7 fails the check constraint');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, status, total_amount, currency)
     values ('sm_bad_status_payment_02', 'e3000000-0000-4000-8000-000000000001', tests.get_supabase_uid('sm-buyer'),
             'store-test', 'paid', 10000, 'KRW') $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_status_check"',
  'status is case-sensitive: ''paid'' fails the check constraint');
select throws_ok(
  format($$ update public.payments set status = 'REFUNDED' where id = %L $$, pg_temp.sm_payment('READY')),
  'P0001', 'illegal payment status transition READY -> REFUNDED',
  'updating to a status outside the 7 is refused');
select throws_ok(
  format($$ update public.payments set status = 'REFUNDED' where id = %L $$, pg_temp.sm_payment('CANCELLED')),
  'P0001', 'illegal payment status transition CANCELLED -> REFUNDED',
  'updating a cancelled payment to a status outside the 7 is refused');

select * from finish();
rollback;
