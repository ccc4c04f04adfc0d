-- Proves, from the catalog (so a table added later is covered automatically), that:
--   * every table in schema public has row level security enabled;
--   * no view in public can bypass RLS (a view runs as its owner unless security_invoker is on);
--   * anon (and PUBLIC) hold no privilege on any table, column or sequence in public except SELECT on
--     products;
--   * authenticated holds nothing but SELECT anywhere in public (all writes go through the service or
--     a security definer function);
--   * service_role cannot delete or truncate the money records (payments, payment_cancellations,
--     payment_events), so the "never deleted" rule does not depend on triggers alone.
begin;
set local search_path = public, extensions, tests;

select plan(11);

-- RLS ------------------------------------------------------------------------------------------------
select is_empty(
  $$ select c.relname::text
       from pg_class c
      where c.relnamespace = 'public'::regnamespace
        and c.relkind in ('r', 'p')
        and not c.relrowsecurity $$,
  'every table in schema public has row level security enabled'
);

-- The check above must actually see the tables of this schema (guards against a vacuous query).
select set_has(
  $$ select c.relname::text
       from pg_class c
      where c.relnamespace = 'public'::regnamespace
        and c.relkind in ('r', 'p')
        and c.relrowsecurity $$,
  $$ values ('products'), ('orders'), ('order_items'), ('payments'), ('payment_cancellations'),
            ('payment_events'), ('webhook_logs'), ('idempotency_keys'), ('billing_keys'),
            ('identity_verifications') $$,
  'the RLS catalog check covers all ten known tables'
);

select is_empty(
  $$ select c.relname::text
       from pg_class c
      where c.relnamespace = 'public'::regnamespace
        and c.relkind in ('v', 'm')
        and not coalesce('security_invoker=true' = any (c.reloptions), false)
        and (has_table_privilege('anon', c.oid, 'select')
             or has_table_privilege('authenticated', c.oid, 'select')) $$,
  'no view in public readable by an API role runs with its owner''s rights (would bypass RLS)'
);

-- anon / PUBLIC grants -------------------------------------------------------------------------------
select is_empty(
  $$ select table_name::text || ': ' || privilege_type::text
       from information_schema.role_table_grants
      where table_schema = 'public'
        and grantee in ('anon', 'PUBLIC')
        and table_name <> 'products' $$,
  'anon and PUBLIC hold no table privilege in public except on products'
);

select results_eq(
  $$ select privilege_type::text collate "default"
       from information_schema.role_table_grants
      where table_schema = 'public' and table_name = 'products' and grantee in ('anon', 'PUBLIC')
      order by 1 $$,
  $$ values ('SELECT') $$,
  'anon holds exactly SELECT on products'
);

select is_empty(
  $$ select table_name::text || '.' || column_name::text || ': ' || privilege_type::text
       from information_schema.column_privileges
      where table_schema = 'public'
        and grantee in ('anon', 'PUBLIC')
        and (table_name <> 'products' or privilege_type <> 'SELECT') $$,
  'anon and PUBLIC hold no column privilege in public except SELECT on products columns'
);

select is_empty(
  $$ select c.relname::text
       from pg_class c
      where c.relnamespace = 'public'::regnamespace
        and c.relkind = 'S'
        and (has_sequence_privilege('anon', c.oid, 'usage')
             or has_sequence_privilege('anon', c.oid, 'select')
             or has_sequence_privilege('anon', c.oid, 'update')) $$,
  'anon holds no privilege on any sequence in public'
);

-- authenticated is read-only -------------------------------------------------------------------------
select is_empty(
  $$ select table_name::text || ': ' || privilege_type::text
       from information_schema.role_table_grants
      where table_schema = 'public'
        and grantee = 'authenticated'
        and privilege_type <> 'SELECT' $$,
  'authenticated holds no table privilege in public other than SELECT'
);

select is_empty(
  $$ select table_name::text || '.' || column_name::text || ': ' || privilege_type::text
       from information_schema.column_privileges
      where table_schema = 'public'
        and grantee = 'authenticated'
        and privilege_type <> 'SELECT' $$,
  'authenticated holds no column privilege in public other than SELECT'
);

-- money records are never deleted, not even by service_role -------------------------------------------
select is_empty(
  $$ select t || ': ' || p
       from unnest(array['public.payments', 'public.payment_cancellations', 'public.payment_events']) as t,
            unnest(array['DELETE', 'TRUNCATE']) as p
      where has_table_privilege('service_role', t, p) $$,
  'service_role has neither DELETE nor TRUNCATE on payments, payment_cancellations, payment_events'
);

select is_empty(
  $$ select p
       from unnest(array['UPDATE', 'DELETE', 'TRUNCATE']) as p
      where has_table_privilege('service_role', 'public.payment_events', p) $$,
  'service_role cannot update, delete or truncate the append-only payment_events'
);

select * from finish();
rollback;
