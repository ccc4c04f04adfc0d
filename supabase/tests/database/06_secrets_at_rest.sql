-- Proves that secrets at rest are out of every API role's reach (20261201130000_secrets_at_rest_and_ownership):
--   * service_role (the REST API with the service key) cannot select any sensitive column of billing_keys
--     and identity_verifications, column by column, while the non-sensitive ones stay readable;
--   * no API role can select identity_verification_requests except service_role;
--   * customers read their cancellations without requested_by and the PortOne Idempotency-Key;
--   * a billing key inserted in the clear gets its lookup hash from the trigger, and the hash is unique.
begin;
set local search_path = public, extensions, tests;

select plan(26);

do $$
declare
  owner_id uuid := tests.create_supabase_user('sr-owner');
begin
  insert into public.billing_keys (id, user_id, billing_key, store_id) values
    ('b6000000-0000-4000-8000-000000000001', owner_id, 'sr-billing-key-1', 'store-test');
  insert into public.identity_verifications
    (user_id, portone_identity_verification_id, store_id, ci_hash, personal_data, name_masked, verified_at)
  values (owner_id, 'sr-iv-1', 'store-test', repeat('6', 64), 'v1.k.sealed', '홍*동', now());
  insert into public.identity_verification_requests (id, user_id, store_id)
  values ('idv_' || repeat('6', 32), owner_id, 'store-test');
  insert into public.orders (id, user_id, order_name, total_amount, currency)
  values ('a6000000-0000-4000-8000-000000000001', owner_id, 'sr order', 1000, 'KRW');
  insert into public.payments (id, order_id, user_id, store_id, status, total_amount, currency, paid_amount, paid_at)
  values ('sr_payment_000000001', 'a6000000-0000-4000-8000-000000000001', owner_id, 'store-test', 'PAID', 1000,
          'KRW', 1000, now());
  insert into public.payment_cancellations (payment_id, amount, reason, requester, requested_by, idempotency_key)
  values ('sr_payment_000000001', 1, 'sr', 'ADMIN', owner_id, 'sr-idempotency-key-0001');
end
$$;

-- service_role: every sensitive column, one by one ------------------------------------------------------
select ok(not has_column_privilege('service_role', 'public.billing_keys', c, 'select'),
          format('service_role cannot select billing_keys.%s', c))
  from unnest(array['billing_key', 'billing_key_sha256']) as c;
select ok(not has_column_privilege('service_role', 'public.identity_verifications', c, 'select'),
          format('service_role cannot select identity_verifications.%s', c))
  from unnest(array['ci_hash', 'di', 'name', 'phone_number', 'birth_date', 'gender', 'personal_data']) as c;
select ok(has_column_privilege('service_role', 'public.billing_keys', 'card_number_masked', 'select'),
  'service_role still reads the masked card number');

select tests.authenticate_as_service_role();
select throws_ok($$ select billing_key from public.billing_keys $$, '42501', null,
  'service_role: select billing_key is refused');
select throws_ok($$ select * from public.billing_keys $$, '42501', null,
  'service_role: select * on billing_keys is refused');
select throws_ok($$ select personal_data from public.identity_verifications $$, '42501', null,
  'service_role: select personal_data is refused');
select throws_ok($$ select di from public.identity_verifications $$, '42501', null,
  'service_role: select di is refused');
select throws_ok($$ select id from public.billing_keys where billing_key = 'sr-billing-key-1' $$, '42501', null,
  'service_role cannot probe billing_key through a where clause either');
select results_eq($$ select status from public.billing_keys where id = 'b6000000-0000-4000-8000-000000000001' $$,
  $$ values ('ISSUED') $$, 'service_role: the non-sensitive columns stay readable');
select results_eq($$ select user_id from public.identity_verification_requests where id = 'idv_' || repeat('6', 32) $$,
  $$ values (tests.get_supabase_uid('sr-owner')) $$, 'service_role reads identity_verification_requests');

-- clients ----------------------------------------------------------------------------------------------
select tests.authenticate_as('sr-owner');
select throws_ok($$ select id from public.identity_verification_requests $$, '42501', null,
  'owner: identity_verification_requests select is refused');
select throws_ok($$ select requested_by from public.payment_cancellations $$, '42501', null,
  'owner: payment_cancellations.requested_by is not readable');
select throws_ok($$ select idempotency_key from public.payment_cancellations $$, '42501', null,
  'owner: payment_cancellations.idempotency_key is not readable');
select results_eq($$ select amount, requester from public.payment_cancellations $$,
  $$ values (1::bigint, 'ADMIN') $$, 'owner: the rest of their cancellation stays readable');
select throws_ok($$ select personal_data from public.identity_verifications $$, '42501', null,
  'owner: personal_data is not readable');
select tests.clear_authentication();
select throws_ok($$ select id from public.identity_verification_requests $$, '42501', null,
  'anon: identity_verification_requests select is refused');

-- the lookup hash ----------------------------------------------------------------------------------------
select tests.reset_role();
select is((select billing_key_sha256 from public.billing_keys where id = 'b6000000-0000-4000-8000-000000000001'),
  encode(sha256(convert_to('sr-billing-key-1', 'UTF8')), 'hex'),
  'a key inserted in the clear gets its SHA-256 lookup hash');
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id)
     values (tests.get_supabase_uid('sr-owner'), 'sr-billing-key-1', 'store-test') $$,
  '23505', null, 'the same key cannot be stored twice (unique lookup hash)');
select throws_ok(
  $$ insert into public.identity_verification_requests (id, user_id, store_id)
     values ('../other', tests.get_supabase_uid('sr-owner'), 'store-test') $$,
  '23514', null, 'identity_verification_requests ids have the issued shape');

select * from finish();
rollback;
