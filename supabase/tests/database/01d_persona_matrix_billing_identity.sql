-- Proves the persona matrix for the tables holding secrets, billing_keys and identity_verifications:
--   * anon: select / insert / update / delete all 42501;
--   * the owner reads only the granted (masked, non-sensitive) columns of their own row; naming a secret
--     column (billing_key; ci_hash, di, name, birth_date, phone_number, gender, ...) or `*` is 42501;
--   * another user sees none of the owner's rows;
--   * client writes are 42501;
--   * service_role inserts, updates and deletes, and reads every column but the sensitive ones (billing_key,
--     billing_key_sha256; ci_hash, di, name, birth_date, gender, phone_number, personal_data): those are
--     42501 (20261201130000_secrets_at_rest_and_ownership.sql; 06_secrets_at_rest.sql proves each column).
begin;
set local search_path = public, extensions, tests;

select plan(54);

-- Fixtures (as the superuser) ------------------------------------------------------------------------
do $$
declare
  owner_id uuid := tests.create_supabase_user('pm4-owner');
  other_id uuid := tests.create_supabase_user('pm4-other');
begin
  insert into public.billing_keys (id, user_id, billing_key, store_id, card_number_masked, issued_at) values
    ('b4000000-0000-4000-8000-000000000001', owner_id, 'pm4-billing-key-owner-secret', 'store-test', '4111-****-****-1111', now()),
    ('b4000000-0000-4000-8000-000000000002', other_id, 'pm4-billing-key-other-secret', 'store-test', '5555-****-****-4444', now());
  insert into public.identity_verifications
    (id, user_id, portone_identity_verification_id, store_id, ci_hash, di, name, name_masked, birth_date,
     gender, phone_number, operator, is_foreigner, verified_at)
  values
    ('d4000000-0000-4000-8000-000000000001', owner_id, 'pm4-iv-owner', 'store-test', repeat('1', 64), 'di-owner',
     '홍길동', '홍*동', '1990-01-01', 'MALE', '01012345678', 'SKT', false, now()),
    ('d4000000-0000-4000-8000-000000000002', other_id, 'pm4-iv-other', 'store-test', repeat('2', 64), 'di-other',
     '김철수', '김*수', '1991-02-02', 'MALE', '01087654321', 'KT', false, now());
end
$$;

-- ====================================================================================================
-- anon
-- ====================================================================================================
select tests.clear_authentication();

select throws_ok($$ select id from public.billing_keys $$,
  '42501', 'permission denied for table billing_keys', 'anon: billing_keys select is refused');
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id) values (tests.get_supabase_uid('pm4-owner'), 'k', 's') $$,
  '42501', 'permission denied for table billing_keys', 'anon: billing_keys insert is refused');
select throws_ok($$ update public.billing_keys set card_name = 'x' where id = 'b4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table billing_keys', 'anon: billing_keys update is refused');
select throws_ok($$ delete from public.billing_keys where id = 'b4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table billing_keys', 'anon: billing_keys delete is refused');

select throws_ok($$ select id from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications', 'anon: identity_verifications select is refused');
select throws_ok(
  $$ insert into public.identity_verifications (user_id, portone_identity_verification_id, store_id, ci_hash, name, name_masked, verified_at)
     values (tests.get_supabase_uid('pm4-owner'), 'x', 's', repeat('3', 64), 'n', 'n', now()) $$,
  '42501', 'permission denied for table identity_verifications', 'anon: identity_verifications insert is refused');
select throws_ok(
  $$ update public.identity_verifications set name_masked = 'x' where id = 'd4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table identity_verifications', 'anon: identity_verifications update is refused');
select throws_ok($$ delete from public.identity_verifications where id = 'd4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table identity_verifications', 'anon: identity_verifications delete is refused');

-- ====================================================================================================
-- authenticated owner
-- ====================================================================================================
select tests.authenticate_as('pm4-owner');

-- billing_keys: masked columns of their own key only
select results_eq(
  $$ select id, card_number_masked from public.billing_keys $$,
  $$ values ('b4000000-0000-4000-8000-000000000001'::uuid, '4111-****-****-1111') $$,
  'owner: billing_keys select of masked columns returns exactly their own key');
select results_eq(
  $$ select id, user_id, store_id, status, card_name, issued_at is not null, deleted_at from public.billing_keys $$,
  $$ values ('b4000000-0000-4000-8000-000000000001'::uuid, tests.get_supabase_uid('pm4-owner'), 'store-test',
             'ISSUED', null::text, true, null::timestamptz) $$,
  'owner: the other granted billing_keys columns are readable too');
select throws_ok($$ select billing_key from public.billing_keys $$,
  '42501', 'permission denied for table billing_keys', 'owner: selecting billing_key is refused');
select throws_ok($$ select * from public.billing_keys $$,
  '42501', 'permission denied for table billing_keys', 'owner: select * on billing_keys is refused');
select throws_ok($$ select id from public.billing_keys where billing_key like 'pm4%' $$,
  '42501', 'permission denied for table billing_keys', 'owner: filtering on billing_key is refused too');
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id) values (tests.get_supabase_uid('pm4-owner'), 'k', 's') $$,
  '42501', 'permission denied for table billing_keys', 'owner: billing_keys insert is refused');
select throws_ok($$ update public.billing_keys set card_name = 'x' where id = 'b4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table billing_keys', 'owner: billing_keys update of their own key is refused');
select throws_ok($$ delete from public.billing_keys where id = 'b4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table billing_keys', 'owner: billing_keys delete of their own key is refused');

-- identity_verifications: status-like columns of their own row only
select results_eq(
  $$ select id, user_id, store_id, name_masked, operator, is_foreigner, verified_at is not null,
            created_at is not null, updated_at is not null
       from public.identity_verifications $$,
  $$ values ('d4000000-0000-4000-8000-000000000001'::uuid, tests.get_supabase_uid('pm4-owner'), 'store-test',
             '홍*동', 'SKT', false, true, true, true) $$,
  'owner: identity_verifications select of the granted columns returns exactly their own row');
select throws_ok($$ select ci_hash from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications', 'owner: selecting ci_hash is refused');
select throws_ok($$ select di from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications', 'owner: selecting di is refused');
select throws_ok($$ select name from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications', 'owner: selecting name is refused');
select throws_ok($$ select birth_date from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications', 'owner: selecting birth_date is refused');
select throws_ok($$ select phone_number from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications', 'owner: selecting phone_number is refused');
select throws_ok($$ select gender from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications', 'owner: selecting gender is refused');
select throws_ok($$ select portone_identity_verification_id from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications',
  'owner: selecting portone_identity_verification_id is refused');
select throws_ok($$ select * from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications', 'owner: select * on identity_verifications is refused');
select throws_ok(
  $$ insert into public.identity_verifications (user_id, portone_identity_verification_id, store_id, ci_hash, name, name_masked, verified_at)
     values (tests.get_supabase_uid('pm4-owner'), 'x', 's', repeat('3', 64), 'n', 'n', now()) $$,
  '42501', 'permission denied for table identity_verifications', 'owner: identity_verifications insert is refused');
select throws_ok(
  $$ update public.identity_verifications set name_masked = 'x' where id = 'd4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table identity_verifications', 'owner: identity_verifications update is refused');
select throws_ok($$ delete from public.identity_verifications where id = 'd4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table identity_verifications', 'owner: identity_verifications delete is refused');

-- ====================================================================================================
-- another authenticated user
-- ====================================================================================================
select tests.authenticate_as('pm4-other');

select is_empty(
  $$ select id from public.billing_keys where id = 'b4000000-0000-4000-8000-000000000001' $$,
  'other user: the owner''s billing key is not visible');
select results_eq($$ select id from public.billing_keys $$,
  $$ values ('b4000000-0000-4000-8000-000000000002'::uuid) $$,
  'other user: billing_keys select returns only their own key');
select throws_ok(
  $$ insert into public.billing_keys (user_id, billing_key, store_id) values (tests.get_supabase_uid('pm4-owner'), 'k', 's') $$,
  '42501', 'permission denied for table billing_keys', 'other user: billing_keys insert is refused');
select throws_ok(
  $$ update public.billing_keys set status = 'DELETED', deleted_at = now() where id = 'b4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table billing_keys', 'other user: billing_keys update is refused');
select throws_ok($$ delete from public.billing_keys where id = 'b4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table billing_keys', 'other user: billing_keys delete is refused');

select is_empty(
  $$ select id from public.identity_verifications where id = 'd4000000-0000-4000-8000-000000000001' $$,
  'other user: the owner''s identity verification is not visible');
select results_eq($$ select id from public.identity_verifications $$,
  $$ values ('d4000000-0000-4000-8000-000000000002'::uuid) $$,
  'other user: identity_verifications select returns only their own row');
select throws_ok(
  $$ insert into public.identity_verifications (user_id, portone_identity_verification_id, store_id, ci_hash, name, name_masked, verified_at)
     values (tests.get_supabase_uid('pm4-other'), 'x', 's', repeat('3', 64), 'n', 'n', now()) $$,
  '42501', 'permission denied for table identity_verifications', 'other user: identity_verifications insert is refused');
select throws_ok(
  $$ update public.identity_verifications set name_masked = 'x' where id = 'd4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table identity_verifications', 'other user: identity_verifications update is refused');
select throws_ok($$ delete from public.identity_verifications where id = 'd4000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table identity_verifications', 'other user: identity_verifications delete is refused');

-- ====================================================================================================
-- service_role
-- ====================================================================================================
select tests.authenticate_as_service_role();

-- billing_keys
select results_eq(
  $$ select id from public.billing_keys where id::text like 'b4000000-%' order by id $$,
  $$ values ('b4000000-0000-4000-8000-000000000001'::uuid), ('b4000000-0000-4000-8000-000000000002'::uuid) $$,
  'service_role: billing_keys select of the masked columns sees every key');
select throws_ok($$ select billing_key from public.billing_keys $$,
  '42501', 'permission denied for table billing_keys', 'service_role: billing_keys select of billing_key is refused');
select lives_ok(
  $$ insert into public.billing_keys (id, user_id, billing_key, store_id)
     values ('b4000000-0000-4000-8000-000000000003', tests.get_supabase_uid('pm4-owner'), 'pm4-billing-key-service', 'store-test') $$,
  'service_role: billing_keys insert is allowed');
select lives_ok(
  $$ update public.billing_keys set status = 'DELETED', deleted_at = now() where id = 'b4000000-0000-4000-8000-000000000003' $$,
  'service_role: billing_keys update is allowed');
select is((select status from public.billing_keys where id = 'b4000000-0000-4000-8000-000000000003'), 'DELETED',
  'service_role: the billing_keys update took effect');
select lives_ok($$ delete from public.billing_keys where id = 'b4000000-0000-4000-8000-000000000003' $$,
  'service_role: billing_keys delete is allowed');
select is_empty($$ select id from public.billing_keys where id = 'b4000000-0000-4000-8000-000000000003' $$,
  'service_role: the billing_keys delete took effect');

-- identity_verifications
select results_eq(
  $$ select id, name_masked from public.identity_verifications
      where portone_identity_verification_id like 'pm4-%' order by id $$,
  $$ values ('d4000000-0000-4000-8000-000000000001'::uuid, '홍*동'), ('d4000000-0000-4000-8000-000000000002'::uuid, '김*수') $$,
  'service_role: identity_verifications select of the non-sensitive columns sees every row');
select throws_ok($$ select ci_hash, di, name from public.identity_verifications $$,
  '42501', 'permission denied for table identity_verifications',
  'service_role: identity_verifications select of ci_hash, di, name is refused');
select lives_ok(
  $$ insert into public.identity_verifications
       (id, user_id, portone_identity_verification_id, store_id, ci_hash, name, name_masked, verified_at)
     values ('d4000000-0000-4000-8000-000000000003', tests.create_supabase_user('pm4-third'), 'pm4-iv-third',
             'store-test', repeat('3', 64), '이영희', '이*희', now()) $$,
  'service_role: identity_verifications insert is allowed');
select lives_ok(
  $$ update public.identity_verifications set operator = 'LGU' where id = 'd4000000-0000-4000-8000-000000000003' $$,
  'service_role: identity_verifications update is allowed');
select is((select operator from public.identity_verifications where id = 'd4000000-0000-4000-8000-000000000003'), 'LGU',
  'service_role: the identity_verifications update took effect');
select lives_ok($$ delete from public.identity_verifications where id = 'd4000000-0000-4000-8000-000000000003' $$,
  'service_role: identity_verifications delete is allowed');
select is_empty($$ select id from public.identity_verifications where id = 'd4000000-0000-4000-8000-000000000003' $$,
  'service_role: the identity_verifications delete took effect');

-- ====================================================================================================
-- superuser: nothing the refused personas tried changed the fixtures
-- ====================================================================================================
select tests.reset_role();

select results_eq(
  $$ select id, status, card_name, deleted_at from public.billing_keys where id::text like 'b4000000-%' order by id $$,
  $$ values ('b4000000-0000-4000-8000-000000000001'::uuid, 'ISSUED', null::text, null::timestamptz),
            ('b4000000-0000-4000-8000-000000000002'::uuid, 'ISSUED', null::text, null::timestamptz) $$,
  'superuser: the billing_keys fixtures are unchanged');
select results_eq(
  $$ select id, name_masked, operator from public.identity_verifications
      where portone_identity_verification_id like 'pm4-%' order by id $$,
  $$ values ('d4000000-0000-4000-8000-000000000001'::uuid, '홍*동', 'SKT'),
            ('d4000000-0000-4000-8000-000000000002'::uuid, '김*수', 'KT') $$,
  'superuser: the identity_verifications fixtures are unchanged');

select * from finish();
rollback;
