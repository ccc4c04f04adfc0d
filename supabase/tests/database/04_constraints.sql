-- Proves the table constraints that keep money and identity data consistent:
--   * amounts: no negative amounts on products / orders / payments / cancellations; no over-cancel
--     (cancelled_amount <= paid_amount); cancel_reserved_amount within the cancellable balance;
--     cancelled_tax_free_amount <= cancelled_amount; cancellable_amount is generated as paid - cancelled;
--   * uniqueness: webhook_id, ci_hash, one identity verification per user, portone_cancellation_id,
--     the cancellation idempotency_key, (user, route, key) of idempotency_keys, billing_key;
--   * cancellations: a settled one never changes status, amount or idempotency key; REQUESTED iff
--     settled_at is null;
--   * billing_keys: deleted_at iff DELETED; card_number_masked refuses an unmasked number;
--   * payments: id format.
-- Each case violates exactly one rule where possible, so the exact constraint name is asserted.
begin;
set local search_path = public, extensions, tests;

select plan(47);

-- Fixtures (as the superuser) ------------------------------------------------------------------------
do $$
declare
  buyer uuid := tests.create_supabase_user('cn-buyer');
  second uuid := tests.create_supabase_user('cn-second');
begin
  perform tests.create_supabase_user('cn-third');
  insert into public.products (id, name, unit_price) values ('cn-item', 'CN item', 10000);
  insert into public.orders (id, user_id, order_name, total_amount, currency)
  values ('f4000000-0000-4000-8000-000000000001', buyer, 'CN item', 10000, 'KRW');
  insert into public.payments (id, order_id, user_id, store_id, status, total_amount, currency, paid_amount, paid_at)
  values ('cn_payment_00000000001', 'f4000000-0000-4000-8000-000000000001', buyer, 'store-test', 'PAID', 10000, 'KRW', 10000, now());
  insert into public.payment_cancellations
    (id, payment_id, status, amount, reason, requester, portone_cancellation_id, idempotency_key, settled_at)
  values
    ('f4000000-0000-4000-8000-0000000000c1', 'cn_payment_00000000001', 'SUCCEEDED', 1000, 'first', 'CUSTOMER',
     'cn-portone-cancel-1', 'cn-idempotency-key-0001', now()),
    ('f4000000-0000-4000-8000-0000000000c2', 'cn_payment_00000000001', 'REQUESTED', 1000, 'second', 'CUSTOMER',
     null, 'cn-idempotency-key-0002', null);
  insert into public.webhook_logs (webhook_id, payload, payload_sha256) values ('cn-webhook-1', '{}', repeat('a', 64));
  insert into public.identity_verifications
    (user_id, portone_identity_verification_id, store_id, ci_hash, name, name_masked, verified_at)
  values (buyer, 'cn-iv-1', 'store-test', repeat('c', 64), '홍길동', '홍*동', now());
  insert into public.idempotency_keys (user_id, route, key, request_hash)
  values (buyer, 'payments-prepare', 'cn-key-1', repeat('d', 64));
  insert into public.billing_keys (user_id, billing_key, store_id) values (second, 'cn-billing-key-1', 'store-test');
end
$$;

-- ====================================================================================================
-- amounts: never negative
-- ====================================================================================================
select throws_ok(
  $$ insert into public.products (id, name, unit_price) values ('cn-neg', 'x', -1) $$,
  '23514', null,
  'products: a negative unit_price is refused (23514; it necessarily breaks the tax-free check too)');
select throws_ok(
  $$ insert into public.products (id, name, unit_price) values ('cn-zero', 'x', 0) $$,
  '23514', 'new row for relation "products" violates check constraint "products_unit_price_check"',
  'products: a zero unit_price is refused');
select throws_ok(
  $$ insert into public.products (id, name, unit_price, tax_free_price) values ('cn-neg', 'x', 100, -1) $$,
  '23514', 'new row for relation "products" violates check constraint "products_check"',
  'products: a negative tax_free_price is refused');
select throws_ok(
  $$ insert into public.orders (user_id, order_name, total_amount, tax_free_amount, currency)
     values (tests.get_supabase_uid('cn-buyer'), 'x', -1, 0, 'KRW') $$,
  '23514', null,
  'orders: a negative total_amount is refused (23514; it necessarily breaks the tax-free check too)');
select throws_ok(
  $$ insert into public.orders (user_id, order_name, total_amount, tax_free_amount, currency)
     values (tests.get_supabase_uid('cn-buyer'), 'x', 100, -1, 'KRW') $$,
  '23514', 'new row for relation "orders" violates check constraint "orders_check"',
  'orders: a negative tax_free_amount is refused');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, tax_free_amount, currency)
     values ('cn_payment_negative_01', 'f4000000-0000-4000-8000-000000000001', tests.get_supabase_uid('cn-buyer'),
             'store-test', -1, 0, 'KRW') $$,
  'P0001', 'a payment must match its order''s owner, amounts and currency',
  'payments: a negative total_amount is refused (the order-match trigger fires before the checks)');
select throws_ok(
  $$ update public.payments set paid_amount = -1, cancelled_amount = 0 where id = 'cn_payment_00000000001' $$,
  '23514', null,
  'payments: a negative paid_amount is refused (23514; it necessarily breaks cancelled <= paid too)');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency, cancelled_amount, cancelled_tax_free_amount)
     values ('cn_payment_negative_02', 'f4000000-0000-4000-8000-000000000001', tests.get_supabase_uid('cn-buyer'),
             'store-test', 10000, 'KRW', -1, -1) $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_cancelled_amount_check"',
  'payments: a negative cancelled_amount is refused');
select throws_ok(
  $$ update public.payments set cancel_reserved_amount = -1 where id = 'cn_payment_00000000001' $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_cancel_reserved_amount_check"',
  'payments: a negative cancel_reserved_amount is refused');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, amount, tax_free_amount, reason, requester)
     values ('cn_payment_00000000001', -1, -1, 'x', 'ADMIN') $$,
  '23514', 'new row for relation "payment_cancellations" violates check constraint "payment_cancellations_amount_check"',
  'payment_cancellations: a negative amount is refused');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, amount, reason, requester)
     values ('cn_payment_00000000001', 0, 'x', 'ADMIN') $$,
  '23514', 'new row for relation "payment_cancellations" violates check constraint "payment_cancellations_amount_check"',
  'payment_cancellations: a zero amount is refused');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, amount, tax_free_amount, reason, requester)
     values ('cn_payment_00000000001', 100, -1, 'x', 'ADMIN') $$,
  '23514', 'new row for relation "payment_cancellations" violates check constraint "payment_cancellations_check"',
  'payment_cancellations: a negative tax_free_amount is refused');

-- ====================================================================================================
-- amounts: cancelling within what was paid
-- ====================================================================================================
select throws_ok(
  $$ update public.payments set status = 'PARTIAL_CANCELLED', cancelled_amount = 10001 where id = 'cn_payment_00000000001' $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_cancelled_within_paid"',
  'payments: over-cancel (cancelled_amount 10001 > paid_amount 10000) is refused');
select lives_ok(
  $$ update public.payments set status = 'PARTIAL_CANCELLED', cancelled_amount = 4000 where id = 'cn_payment_00000000001' $$,
  'payments: a partial cancel within paid_amount is accepted');
select throws_ok(
  $$ update public.payments set cancel_reserved_amount = 6001 where id = 'cn_payment_00000000001' $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_reserved_within_cancellable"',
  'payments: reserving 6001 when only 10000 - 4000 = 6000 is cancellable is refused');
select lives_ok(
  $$ update public.payments set cancel_reserved_amount = 6000 where id = 'cn_payment_00000000001' $$,
  'payments: reserving exactly the cancellable balance is accepted');
select throws_ok(
  $$ update public.payments set cancelled_amount = 5000 where id = 'cn_payment_00000000001' $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_reserved_within_cancellable"',
  'payments: cancelling more while the reservation covers the whole balance is refused');
select throws_ok(
  $$ update public.payments set cancelled_tax_free_amount = 4001 where id = 'cn_payment_00000000001' $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_cancelled_tax_free_within_cancelled"',
  'payments: cancelled_tax_free_amount above cancelled_amount is refused');

-- ====================================================================================================
-- cancellable_amount is generated: paid - cancelled, always
-- ====================================================================================================
select is(
  (select cancellable_amount from public.payments where id = 'cn_payment_00000000001'), 6000::bigint,
  'cancellable_amount is 10000 - 4000 after a partial cancel');
update public.payments set cancel_reserved_amount = 0, cancelled_amount = 7500 where id = 'cn_payment_00000000001';
select is(
  (select cancellable_amount from public.payments where id = 'cn_payment_00000000001'), 2500::bigint,
  'cancellable_amount follows cancelled_amount (10000 - 7500)');
select throws_ok(
  $$ update public.payments set cancellable_amount = 10000 where id = 'cn_payment_00000000001' $$,
  '428C9', 'column "cancellable_amount" can only be updated to DEFAULT',
  'cancellable_amount cannot be written by an update');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency, cancellable_amount)
     values ('cn_payment_generated_1', 'f4000000-0000-4000-8000-000000000001', tests.get_supabase_uid('cn-buyer'),
             'store-test', 10000, 'KRW', 10000) $$,
  '428C9', 'cannot insert a non-DEFAULT value into column "cancellable_amount"',
  'cancellable_amount cannot be written by an insert');
select is_empty(
  $$ select id from public.payments where cancellable_amount is distinct from paid_amount - cancelled_amount $$,
  'no payment anywhere has cancellable_amount other than paid_amount - cancelled_amount');

-- ====================================================================================================
-- uniqueness
-- ====================================================================================================
select throws_ok(
  $$ insert into public.webhook_logs (webhook_id, payload, payload_sha256) values ('cn-webhook-1', '{}', repeat('b', 64)) $$,
  '23505', 'duplicate key value violates unique constraint "webhook_logs_webhook_id_key"',
  'webhook_logs: a duplicate webhook_id is refused');
select throws_ok(
  $$ insert into public.identity_verifications
       (user_id, portone_identity_verification_id, store_id, ci_hash, name, name_masked, verified_at)
     values (tests.get_supabase_uid('cn-second'), 'cn-iv-2', 'store-test', repeat('c', 64), '홍길동', '홍*동', now()) $$,
  '23505', 'duplicate key value violates unique constraint "identity_verifications_ci_hash_key"',
  'identity_verifications: the same person (ci_hash) cannot verify a second account');
select throws_ok(
  $$ insert into public.identity_verifications
       (user_id, portone_identity_verification_id, store_id, ci_hash, name, name_masked, verified_at)
     values (tests.get_supabase_uid('cn-buyer'), 'cn-iv-3', 'store-test', repeat('e', 64), '김철수', '김*수', now()) $$,
  '23505', 'duplicate key value violates unique constraint "identity_verifications_user_id_key"',
  'identity_verifications: one verification per user');
select throws_ok(
  $$ insert into public.identity_verifications
       (user_id, portone_identity_verification_id, store_id, ci_hash, name, name_masked, verified_at)
     values (tests.get_supabase_uid('cn-third'), 'cn-iv-1', 'store-test', repeat('f', 64), '이영희', '이*희', now()) $$,
  '23505', 'duplicate key value violates unique constraint "identity_verifications_portone_identity_verification_id_key"',
  'identity_verifications: a PortOne verification id is used once');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, status, amount, reason, requester, portone_cancellation_id, settled_at)
     values ('cn_payment_00000000001', 'SUCCEEDED', 100, 'dup', 'PORTONE', 'cn-portone-cancel-1', now()) $$,
  '23505', 'duplicate key value violates unique constraint "payment_cancellations_portone_cancellation_id_key"',
  'payment_cancellations: a duplicate portone_cancellation_id is refused');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, amount, reason, requester, idempotency_key)
     values ('cn_payment_00000000001', 100, 'dup', 'CUSTOMER', 'cn-idempotency-key-0001') $$,
  '23505', 'duplicate key value violates unique constraint "payment_cancellations_idempotency_key_key"',
  'payment_cancellations: a duplicate idempotency_key is refused (a retry never refunds twice)');
select throws_ok(
  $$ insert into public.idempotency_keys (user_id, route, key, request_hash)
     values (tests.get_supabase_uid('cn-buyer'), 'payments-prepare', 'cn-key-1', repeat('0', 64)) $$,
  '23505', 'duplicate key value violates unique constraint "idempotency_keys_user_id_route_key_key"',
  'idempotency_keys: (user, route, key) is unique');
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id)
     values (tests.get_supabase_uid('cn-buyer'), 'cn-billing-key-1', 'store-test') $$,
  '23505', 'duplicate key value violates unique constraint "billing_keys_billing_key_key"',
  'billing_keys: a billing key belongs to one row');

-- ====================================================================================================
-- cancellations: settlement
-- ====================================================================================================
select throws_ok(
  $$ update public.payment_cancellations set status = 'FAILED', failure_reason = 'x'
      where id = 'f4000000-0000-4000-8000-0000000000c1' $$,
  'P0001', 'a settled cancellation never changes status (SUCCEEDED -> FAILED)',
  'a SUCCEEDED cancellation cannot become FAILED');
select throws_ok(
  $$ update public.payment_cancellations set status = 'REQUESTED', settled_at = null
      where id = 'f4000000-0000-4000-8000-0000000000c1' $$,
  'P0001', 'a settled cancellation never changes status (SUCCEEDED -> REQUESTED)',
  'a SUCCEEDED cancellation cannot go back to REQUESTED');
select throws_ok(
  $$ update public.payment_cancellations set amount = 2000 where id = 'f4000000-0000-4000-8000-0000000000c2' $$,
  'P0001', 'a cancellation''s payment, amount and idempotency key never change',
  'a cancellation''s amount never changes');
select throws_ok(
  $$ update public.payment_cancellations set idempotency_key = 'cn-idempotency-key-0099'
      where id = 'f4000000-0000-4000-8000-0000000000c2' $$,
  'P0001', 'a cancellation''s payment, amount and idempotency key never change',
  'a cancellation''s idempotency key never changes');
select throws_ok(
  $$ update public.payment_cancellations set status = 'SUCCEEDED' where id = 'f4000000-0000-4000-8000-0000000000c2' $$,
  '23514', 'new row for relation "payment_cancellations" violates check constraint "payment_cancellations_settled"',
  'settling a cancellation without settled_at is refused');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, status, amount, reason, requester, settled_at)
     values ('cn_payment_00000000001', 'REQUESTED', 100, 'x', 'ADMIN', now()) $$,
  '23514', 'new row for relation "payment_cancellations" violates check constraint "payment_cancellations_settled"',
  'a REQUESTED cancellation with settled_at is refused');
select throws_ok(
  $$ insert into public.payment_cancellations (payment_id, status, amount, reason, requester)
     values ('cn_payment_00000000001', 'FAILED', 100, 'x', 'ADMIN') $$,
  '23514', 'new row for relation "payment_cancellations" violates check constraint "payment_cancellations_settled"',
  'a FAILED cancellation without settled_at is refused');
select lives_ok(
  $$ update public.payment_cancellations set status = 'SUCCEEDED', settled_at = now()
      where id = 'f4000000-0000-4000-8000-0000000000c2' $$,
  'a REQUESTED cancellation settles with settled_at');

-- ====================================================================================================
-- billing_keys
-- ====================================================================================================
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, status)
     values (tests.get_supabase_uid('cn-buyer'), 'cn-billing-key-2', 'store-test', 'DELETED') $$,
  '23514', 'new row for relation "billing_keys" violates check constraint "billing_keys_deleted_at"',
  'billing_keys: DELETED without deleted_at is refused');
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, status, deleted_at)
     values (tests.get_supabase_uid('cn-buyer'), 'cn-billing-key-3', 'store-test', 'ISSUED', now()) $$,
  '23514', 'new row for relation "billing_keys" violates check constraint "billing_keys_deleted_at"',
  'billing_keys: ISSUED with deleted_at is refused');
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, card_number_masked)
     values (tests.get_supabase_uid('cn-buyer'), 'cn-billing-key-4', 'store-test', '4111111111111111') $$,
  '23514', 'new row for relation "billing_keys" violates check constraint "billing_keys_card_number_masked_check"',
  'billing_keys: an unmasked card number is refused');
select lives_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id, card_number_masked)
     values (tests.get_supabase_uid('cn-buyer'), 'cn-billing-key-5', 'store-test', '411111******1111') $$,
  'billing_keys: a masked card number is accepted');

-- ====================================================================================================
-- payments: id format
-- ====================================================================================================
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency)
     values ('short_id', 'f4000000-0000-4000-8000-000000000001', tests.get_supabase_uid('cn-buyer'), 'store-test', 10000, 'KRW') $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_id_check"',
  'payments: an id shorter than 16 characters is refused');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency)
     values ('payment id with spaces', 'f4000000-0000-4000-8000-000000000001', tests.get_supabase_uid('cn-buyer'), 'store-test', 10000, 'KRW') $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_id_check"',
  'payments: an id with characters outside [A-Za-z0-9_-] is refused');
select throws_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency)
     values (repeat('p', 65), 'f4000000-0000-4000-8000-000000000001', tests.get_supabase_uid('cn-buyer'), 'store-test', 10000, 'KRW') $$,
  '23514', 'new row for relation "payments" violates check constraint "payments_id_check"',
  'payments: an id longer than 64 characters is refused');
select lives_ok(
  $$ insert into public.payments (id, order_id, user_id, store_id, total_amount, currency)
     values ('pay_0123456789-ABC_xyz', 'f4000000-0000-4000-8000-000000000001', tests.get_supabase_uid('cn-buyer'), 'store-test', 10000, 'KRW') $$,
  'payments: a well-formed id is accepted');

select * from finish();
rollback;
