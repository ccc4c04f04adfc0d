-- Proves the order and payment rules enforced by triggers and checks (as the superuser, so no grant or
-- policy is what stops a write; only the rule under test):
--   * the order status machine (private.enforce_order_rules): pending -> paid / partial_cancelled /
--     cancelled, paid -> partial_cancelled / cancelled, partial_cancelled -> cancelled and same-status
--     updates are accepted; paid -> pending, cancelled -> paid / pending, partial_cancelled -> paid /
--     pending raise 'illegal order status transition <from> -> <to>' (P0001);
--   * an order's user_id, total_amount, tax_free_amount and currency never change; paid_payment_id may be
--     set once, then never changes nor is cleared; updated_at is stamped by the trigger;
--   * a non-pending order always names its paying payment and a pending one never does
--     (orders_paid_payment_id_set_once_paid, 23514): pending with a paid_payment_id, paid without one and
--     an order inserted directly as 'paid' are refused;
--   * an order is paid only by one of its own payments: setting paid_payment_id to another order's
--     payment raises 'an order is paid only by one of its own payments' (P0001);
--   * a payment insert must match its order (private.check_payment_matches_order): another user_id,
--     total_amount, tax_free_amount or currency raises P0001; a matching payment is stored;
--   * payments.billing_key_id never changes after insert: not to another key, not to null, not from null
--     (private.enforce_payment_rules);
--   * payment_cancellations.tax_free_amount never changes (private.enforce_cancellation_rules);
--   * truncate public.payment_events is refused even for the superuser (payment_events_no_truncate), and
--     so are truncate public.payments and public.payment_cancellations (P0001, money records);
--   * billing_keys.card_number_masked keeps at most 10 digits whatever the separators: '4111*1111*1111*1111',
--     '4111-1111-1111-1111' and '4111 1111 1111 1111' are refused (23514), '4111-****-****-1111',
--     '****1111' and '411111******1111' are accepted.
begin;
set local search_path = public, extensions, tests;

select plan(63);

-- Fixtures and helpers (as the superuser) ------------------------------------------------------------
do $$
declare
  buyer uuid := tests.create_supabase_user('op-buyer');
  other uuid := tests.create_supabase_user('op-other');
begin
  insert into public.orders (id, user_id, order_name, total_amount, tax_free_amount, currency) values
    ('a5000000-0000-4000-8000-000000000001', buyer, 'OP paid-by order', 10000, 2000, 'KRW'),
    ('a5000000-0000-4000-8000-000000000002', buyer, 'OP match order', 10000, 2000, 'KRW');
  insert into public.payments (id, order_id, user_id, store_id, status, total_amount, tax_free_amount, currency, paid_amount, paid_at)
  values
    ('op_paying_payment_0001', 'a5000000-0000-4000-8000-000000000001', buyer, 'store-test', 'PAID', 10000, 2000, 'KRW', 10000, now()),
    ('op_second_payment_0001', 'a5000000-0000-4000-8000-000000000001', buyer, 'store-test', 'PAID', 10000, 2000, 'KRW', 10000, now());
  insert into public.billing_keys (id, user_id, billing_key, store_id, card_number_masked) values
    ('b5000000-0000-4000-8000-000000000001', buyer, 'op-billing-key-1', 'store-test', '4111-****-****-1111'),
    ('b5000000-0000-4000-8000-000000000002', buyer, 'op-billing-key-2', 'store-test', '5555-****-****-4444');
  insert into public.payments (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency, billing_key_id)
  values
    ('op_billing_payment_001', 'a5000000-0000-4000-8000-000000000001', buyer, 'store-test', 10000, 2000, 'KRW',
     'b5000000-0000-4000-8000-000000000001'),
    ('op_nokey_payment_00001', 'a5000000-0000-4000-8000-000000000001', buyer, 'store-test', 10000, 2000, 'KRW', null);
  insert into public.payment_cancellations (id, payment_id, amount, tax_free_amount, reason, requester, idempotency_key)
  values ('c5000000-0000-4000-8000-000000000001', 'op_paying_payment_0001', 5000, 1000, 'partial refund', 'CUSTOMER',
          'op-idempotency-key-0001');
  insert into public.payment_events (payment_id, source, kind, from_status, to_status)
  values ('op_paying_payment_0001', 'confirm', 'paid', 'READY', 'PAID');
end
$$;

-- A new PAID payment of op-buyer for the given order (an op_order); returns its id.
create function pg_temp.op_payment(p_order uuid) returns text
language plpgsql as $$
declare
  new_id text := 'op_pay_' || replace(p_order::text, '-', '');
begin
  insert into public.payments (id, order_id, user_id, store_id, status, total_amount, tax_free_amount, currency, paid_amount, paid_at)
  values (new_id, p_order, tests.get_supabase_uid('op-buyer'), 'store-test', 'PAID', 10000, 2000, 'KRW', 10000, now());
  return new_id;
end
$$;

-- A new order of op-buyer in the given status. It is inserted pending, last updated long ago; any other
-- status is reached the only way there is: a payment of the order first, then one update naming it.
create function pg_temp.op_order(p_status text) returns uuid
language plpgsql as $$
declare
  new_id uuid;
begin
  insert into public.orders (user_id, order_name, total_amount, tax_free_amount, currency, updated_at)
  values (tests.get_supabase_uid('op-buyer'), 'OP order', 10000, 2000, 'KRW', '2026-01-01 00:00:00+00')
  returning id into new_id;
  if p_status <> 'pending' then
    update public.orders set status = p_status, paid_payment_id = pg_temp.op_payment(new_id) where id = new_id;
  end if;
  return new_id;
end
$$;

-- The update moving a new order in status p_from to p_to.
create function pg_temp.op_update_sql(p_from text, p_to text) returns text
language sql as $$
  select format($f$update public.orders set status = %L where id = %L$f$, p_to, pg_temp.op_order(p_from))
$$;

-- Runs that transition (leaving pending, the same update names a new payment of the order); returns the
-- stored status afterwards, or the error it raised.
create function pg_temp.op_try(p_from text, p_to text) returns text
language plpgsql as $$
declare
  target uuid := pg_temp.op_order(p_from);
  paying text := case when p_from = 'pending' and p_to <> 'pending' then pg_temp.op_payment(target) end;
  moved integer;
begin
  update public.orders set status = p_to, paid_payment_id = coalesce(paying, paid_payment_id) where id = target;
  get diagnostics moved = row_count;
  if moved <> 1 then
    return 'updated ' || moved || ' rows';
  end if;
  return (select o.status from public.orders o where o.id = target);
exception when others then
  return 'error ' || sqlstate || ': ' || sqlerrm;
end
$$;

-- ====================================================================================================
-- 1. order status machine: legal transitions
-- ====================================================================================================
select is(pg_temp.op_try('pending', 'paid'), 'paid', 'order pending -> paid is legal');
select is(pg_temp.op_try('pending', 'partial_cancelled'), 'partial_cancelled', 'order pending -> partial_cancelled is legal (late snapshot)');
select is(pg_temp.op_try('pending', 'cancelled'), 'cancelled', 'order pending -> cancelled is legal (late snapshot)');
select is(pg_temp.op_try('paid', 'partial_cancelled'), 'partial_cancelled', 'order paid -> partial_cancelled is legal');
select is(pg_temp.op_try('paid', 'cancelled'), 'cancelled', 'order paid -> cancelled is legal');
select is(pg_temp.op_try('partial_cancelled', 'cancelled'), 'cancelled', 'order partial_cancelled -> cancelled is legal');

-- same status
select is(pg_temp.op_try('pending', 'pending'), 'pending', 'order pending -> pending is legal');
select is(pg_temp.op_try('paid', 'paid'), 'paid', 'order paid -> paid is legal');
select is(pg_temp.op_try('partial_cancelled', 'partial_cancelled'), 'partial_cancelled', 'order partial_cancelled -> partial_cancelled is legal');
select is(pg_temp.op_try('cancelled', 'cancelled'), 'cancelled', 'order cancelled -> cancelled is legal');

-- ====================================================================================================
-- 1. order status machine: illegal transitions
-- ====================================================================================================
select throws_ok(pg_temp.op_update_sql('paid', 'pending'),
  'P0001', 'illegal order status transition paid -> pending', 'order paid -> pending is refused');
select throws_ok(pg_temp.op_update_sql('cancelled', 'paid'),
  'P0001', 'illegal order status transition cancelled -> paid', 'order cancelled -> paid is refused');
select throws_ok(pg_temp.op_update_sql('cancelled', 'pending'),
  'P0001', 'illegal order status transition cancelled -> pending', 'order cancelled -> pending is refused');
select throws_ok(pg_temp.op_update_sql('partial_cancelled', 'paid'),
  'P0001', 'illegal order status transition partial_cancelled -> paid', 'order partial_cancelled -> paid is refused');
select throws_ok(pg_temp.op_update_sql('partial_cancelled', 'pending'),
  'P0001', 'illegal order status transition partial_cancelled -> pending', 'order partial_cancelled -> pending is refused');

-- ====================================================================================================
-- 1. an order's owner and amounts never change
-- ====================================================================================================
select throws_ok(
  format($$ update public.orders set user_id = tests.get_supabase_uid('op-other') where id = %L $$, pg_temp.op_order('pending')),
  'P0001', 'an order''s owner, amounts and paying payment never change', 'order user_id cannot change');
select throws_ok(
  format($$ update public.orders set total_amount = 9000 where id = %L $$, pg_temp.op_order('pending')),
  'P0001', 'an order''s owner, amounts and paying payment never change', 'order total_amount cannot change');
select throws_ok(
  format($$ update public.orders set tax_free_amount = 1000 where id = %L $$, pg_temp.op_order('pending')),
  'P0001', 'an order''s owner, amounts and paying payment never change', 'order tax_free_amount cannot change');
select throws_ok(
  format($$ update public.orders set currency = 'USD' where id = %L $$, pg_temp.op_order('pending')),
  'P0001', 'an order''s owner, amounts and paying payment never change', 'order currency cannot change');

-- ====================================================================================================
-- 1. paid_payment_id: set once, then fixed
-- ====================================================================================================
select lives_ok(
  $$ update public.orders set status = 'paid', paid_at = now(), paid_payment_id = 'op_paying_payment_0001'
      where id = 'a5000000-0000-4000-8000-000000000001' $$,
  'order paid_payment_id may be set while it is null');
select lives_ok(
  $$ update public.orders set status = 'partial_cancelled', paid_payment_id = 'op_paying_payment_0001'
      where id = 'a5000000-0000-4000-8000-000000000001' $$,
  'order paid_payment_id may be written again with the same value');
select throws_ok(
  $$ update public.orders set paid_payment_id = 'op_second_payment_0001' where id = 'a5000000-0000-4000-8000-000000000001' $$,
  'P0001', 'an order''s owner, amounts and paying payment never change',
  'order paid_payment_id cannot change to another payment once set');
select throws_ok(
  $$ update public.orders set paid_payment_id = null where id = 'a5000000-0000-4000-8000-000000000001' $$,
  'P0001', 'an order''s owner, amounts and paying payment never change',
  'order paid_payment_id cannot be cleared once set');
select results_eq(
  $$ select status, paid_payment_id from public.orders where id = 'a5000000-0000-4000-8000-000000000001' $$,
  $$ values ('partial_cancelled', 'op_paying_payment_0001') $$,
  'the order keeps the status and paying payment of the accepted updates');

-- ====================================================================================================
-- 1. updated_at is stamped by the trigger
-- ====================================================================================================
create temp table op_stamp as select pg_temp.op_order('pending') as id;
select is(
  (select updated_at from public.orders where id = (select id from op_stamp)),
  '2026-01-01 00:00:00+00'::timestamptz,
  'order updated_at starts at the old fixture value');
update public.orders set status = 'paid', paid_payment_id = pg_temp.op_payment(id), updated_at = '2020-01-01 00:00:00+00'
 where id = (select id from op_stamp);
select is(
  (select updated_at from public.orders where id = (select id from op_stamp)),
  now(),
  'an order update stamps updated_at with the transaction time, whatever the update sets');

-- ====================================================================================================
-- 1. a non-pending order names its paying payment, a pending one never does (check constraint)
-- ====================================================================================================
create temp table op_unpaid as select pg_temp.op_order('pending') as id;
create temp table op_unpaid_payment as select pg_temp.op_payment((select id from op_unpaid)) as id;
select throws_ok(
  format($$ update public.orders set paid_payment_id = %L where id = %L $$,
         (select id from op_unpaid_payment), (select id from op_unpaid)),
  '23514', 'new row for relation "orders" violates check constraint "orders_paid_payment_id_set_once_paid"',
  'a pending order cannot name a paying payment, even one of its own');
select throws_ok(
  format($$ update public.orders set status = 'paid', paid_at = now() where id = %L $$, (select id from op_unpaid)),
  '23514', 'new row for relation "orders" violates check constraint "orders_paid_payment_id_set_once_paid"',
  'an order cannot become paid without naming its paying payment');
select throws_ok(
  format($$ update public.orders set status = 'cancelled' where id = %L $$, (select id from op_unpaid)),
  '23514', 'new row for relation "orders" violates check constraint "orders_paid_payment_id_set_once_paid"',
  'an order cannot become cancelled without naming its paying payment');
select throws_ok(
  $$ insert into public.orders (user_id, order_name, total_amount, tax_free_amount, currency, status, paid_at)
     values (tests.get_supabase_uid('op-buyer'), 'OP inserted paid', 10000, 2000, 'KRW', 'paid', now()) $$,
  'P0001', 'an order starts pending; only its own payment can move it on',
  'an order cannot be inserted directly as paid');
select throws_ok(
  $$ insert into public.orders (user_id, order_name, total_amount, tax_free_amount, currency, status)
     values (tests.get_supabase_uid('op-buyer'), 'OP inserted cancelled', 10000, 2000, 'KRW', 'cancelled') $$,
  'P0001', 'an order starts pending; only its own payment can move it on',
  'an order cannot be inserted directly as cancelled');
select throws_ok(
  format($$ insert into public.orders (user_id, order_name, total_amount, tax_free_amount, currency, status, paid_payment_id)
            values (tests.get_supabase_uid('op-buyer'), 'OP inserted with foreign payment', 10000, 2000, 'KRW', 'paid', %L) $$,
         'op_second_payment_0001'),
  'P0001', 'an order starts pending; only its own payment can move it on',
  'an order cannot be inserted as paid by naming another order''s payment');
select is_empty(
  $$ select id from public.orders where order_name like 'OP inserted %' $$,
  'no order was inserted in a non-pending status');

-- ====================================================================================================
-- 1. an order is paid only by one of its own payments (private.enforce_order_rules)
-- ====================================================================================================
select throws_ok(
  format($$ update public.orders set status = 'paid', paid_payment_id = 'op_second_payment_0001' where id = %L $$,
         (select id from op_unpaid)),
  'P0001', 'an order is paid only by one of its own payments',
  'an order cannot be paid by a payment of another order');
select throws_ok(
  format($$ update public.orders set status = 'cancelled', paid_payment_id = 'op_matching_never_made' where id = %L $$,
         (select id from op_unpaid)),
  'P0001', 'an order is paid only by one of its own payments',
  'an order cannot be paid by a payment that does not exist');
select results_eq(
  format($$ select status, paid_payment_id from public.orders where id = %L $$, (select id from op_unpaid)),
  $$ values ('pending', null::text) $$,
  'the refused updates left the order pending with no paying payment');
select lives_ok(
  format($$ update public.orders set status = 'paid', paid_payment_id = %L where id = %L $$,
         (select id from op_unpaid_payment), (select id from op_unpaid)),
  'the same order is paid by its own payment');

-- ====================================================================================================
-- 2. a payment insert must match its order
-- ====================================================================================================
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency)
     values ('op_mismatch_user_00001', 'a5000000-0000-4000-8000-000000000002', tests.get_supabase_uid('op-other'),
             'store-test', 10000, 2000, 'KRW') $$,
  'P0001', 'a payment must match its order''s owner, amounts and currency',
  'a payment for another user than the order''s owner is refused');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency)
     values ('op_mismatch_total_0001', 'a5000000-0000-4000-8000-000000000002', tests.get_supabase_uid('op-buyer'),
             'store-test', 9000, 2000, 'KRW') $$,
  'P0001', 'a payment must match its order''s owner, amounts and currency',
  'a payment with another total_amount than the order is refused');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency)
     values ('op_mismatch_taxfree_01', 'a5000000-0000-4000-8000-000000000002', tests.get_supabase_uid('op-buyer'),
             'store-test', 10000, 0, 'KRW') $$,
  'P0001', 'a payment must match its order''s owner, amounts and currency',
  'a payment with another tax_free_amount than the order is refused');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency)
     values ('op_mismatch_currency01', 'a5000000-0000-4000-8000-000000000002', tests.get_supabase_uid('op-buyer'),
             'store-test', 10000, 2000, 'USD') $$,
  'P0001', 'a payment must match its order''s owner, amounts and currency',
  'a payment in another currency than the order is refused');
select lives_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency)
     values ('op_matching_payment_01', 'a5000000-0000-4000-8000-000000000002', tests.get_supabase_uid('op-buyer'),
             'store-test', 10000, 2000, 'KRW') $$,
  'a payment matching its order''s owner, amounts and currency is accepted');
select results_eq(
  $$ select id from public.payments where order_id = 'a5000000-0000-4000-8000-000000000002' order by id $$,
  $$ values ('op_matching_payment_01') $$,
  'only the matching payment was stored for the order');

-- ====================================================================================================
-- 3. payments.billing_key_id never changes
-- ====================================================================================================
select lives_ok(
  $$ update public.payments set synced_at = now(), billing_key_id = 'b5000000-0000-4000-8000-000000000001'
      where id = 'op_billing_payment_001' $$,
  'a payment update keeping the same billing_key_id is accepted');
select throws_ok(
  $$ update public.payments set billing_key_id = 'b5000000-0000-4000-8000-000000000002' where id = 'op_billing_payment_001' $$,
  'P0001', 'a payment''s identity, order and requested amount never change',
  'payment billing_key_id cannot change to another key');
select throws_ok(
  $$ update public.payments set billing_key_id = null where id = 'op_billing_payment_001' $$,
  'P0001', 'a payment''s identity, order and requested amount never change',
  'payment billing_key_id cannot be cleared');
select throws_ok(
  $$ update public.payments set billing_key_id = 'b5000000-0000-4000-8000-000000000001' where id = 'op_nokey_payment_00001' $$,
  'P0001', 'a payment''s identity, order and requested amount never change',
  'payment billing_key_id cannot be set after insert on a payment made without one');
select results_eq(
  $$ select id, billing_key_id from public.payments where id in ('op_billing_payment_001', 'op_nokey_payment_00001') order by id $$,
  $$ values ('op_billing_payment_001', 'b5000000-0000-4000-8000-000000000001'::uuid),
            ('op_nokey_payment_00001', null::uuid) $$,
  'both payments keep the billing_key_id they were inserted with');

-- ====================================================================================================
-- 4. payment_cancellations.tax_free_amount never changes
-- ====================================================================================================
select lives_ok(
  $$ update public.payment_cancellations set reason = 'partial refund (edited)', tax_free_amount = 1000
      where id = 'c5000000-0000-4000-8000-000000000001' $$,
  'a cancellation update keeping the same tax_free_amount is accepted');
select throws_ok(
  $$ update public.payment_cancellations set tax_free_amount = 0 where id = 'c5000000-0000-4000-8000-000000000001' $$,
  'P0001', 'a cancellation''s payment, amount and idempotency key never change',
  'cancellation tax_free_amount cannot decrease');
select throws_ok(
  $$ update public.payment_cancellations set tax_free_amount = 2000 where id = 'c5000000-0000-4000-8000-000000000001' $$,
  'P0001', 'a cancellation''s payment, amount and idempotency key never change',
  'cancellation tax_free_amount cannot increase');

-- ====================================================================================================
-- 5. payment_events cannot be truncated, even by the superuser
-- ====================================================================================================
select ok(
  (select rolsuper from pg_roles where rolname = current_user),
  'the truncate below runs as a superuser');
select throws_ok(
  $$ truncate public.payment_events $$,
  'P0001', 'payment_events is append-only',
  'superuser: truncate payment_events is stopped by the no-truncate trigger');
select results_eq(
  $$ select payment_id, kind from public.payment_events where payment_id like 'op\_%' order by id $$,
  $$ values ('op_paying_payment_0001', 'paid') $$,
  'the fixture payment event survived the refused truncate');

-- 5b. payments and cancellations cannot be truncated either; an order's paying payment is its own
select throws_ok($$ truncate public.payments cascade $$, 'P0001',
  'payments holds money records and cannot be truncated', 'truncate public.payments is refused');
select throws_ok($$ truncate public.payment_cancellations $$, 'P0001',
  'payment_cancellations holds money records and cannot be truncated', 'truncate public.payment_cancellations is refused');

-- ====================================================================================================
-- 6. billing_keys.card_number_masked keeps at most BIN + last four digits, whatever the separators
-- ====================================================================================================
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, card_number_masked)
     values (tests.get_supabase_uid('op-buyer'), 'op-billing-key-stars', 'store-test', '4111*1111*1111*1111') $$,
  '23514', 'new row for relation "billing_keys" violates check constraint "billing_keys_card_number_masked_check"',
  'billing_keys: an unmasked card number with * separators is refused');
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, card_number_masked)
     values (tests.get_supabase_uid('op-buyer'), 'op-billing-key-dashes', 'store-test', '4111-1111-1111-1111') $$,
  '23514', 'new row for relation "billing_keys" violates check constraint "billing_keys_card_number_masked_check"',
  'billing_keys: an unmasked card number with dashes is refused');
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, card_number_masked)
     values (tests.get_supabase_uid('op-buyer'), 'op-billing-key-spaces', 'store-test', '4111 1111 1111 1111') $$,
  '23514', 'new row for relation "billing_keys" violates check constraint "billing_keys_card_number_masked_check"',
  'billing_keys: an unmasked card number with spaces is refused');
select lives_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, card_number_masked)
     values (tests.get_supabase_uid('op-buyer'), 'op-billing-key-masked', 'store-test', '4111-****-****-1111') $$,
  'billing_keys: a masked card number with dashes is accepted');
select lives_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, card_number_masked)
     values (tests.get_supabase_uid('op-buyer'), 'op-billing-key-last4', 'store-test', '****1111') $$,
  'billing_keys: a last-four-only masked card number is accepted');
select lives_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, card_number_masked)
     values (tests.get_supabase_uid('op-buyer'), 'op-billing-key-bin6', 'store-test', '411111******1111') $$,
  'billing_keys: BIN (6) + last four is accepted');
select results_eq(
  $$ select billing_key, card_number_masked from public.billing_keys where billing_key like 'op-billing-key-%' order by billing_key $$,
  $$ values ('op-billing-key-1', '4111-****-****-1111'), ('op-billing-key-2', '5555-****-****-4444'),
            ('op-billing-key-bin6', '411111******1111'), ('op-billing-key-last4', '****1111'),
            ('op-billing-key-masked', '4111-****-****-1111') $$,
  'billing_keys holds exactly the fixture and accepted masked numbers, not the refused ones');

select * from finish();
rollback;
