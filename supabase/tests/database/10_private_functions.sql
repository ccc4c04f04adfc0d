-- Proves, from the catalog (so a function added later is covered automatically), that every function in
-- schema private is plpgsql with its search_path pinned. PostgreSQL 15 caches a plpgsql function's plans
-- for the connection's life, but parses and plans a `language sql` function with a SET clause again in
-- every transaction that calls it: five such helpers cost a webhook delivery a third of its database CPU
-- (issue #14).
begin;
set local search_path = public, extensions, tests;

select plan(3);

select is_empty(
  $$ select p.proname::text
       from pg_proc p
       join pg_language l on l.oid = p.prolang
      where p.pronamespace = 'private'::regnamespace
        and l.lanname <> 'plpgsql' $$,
  'every function in private is plpgsql'
);

select is_empty(
  $$ select p.proname::text
       from pg_proc p
      where p.pronamespace = 'private'::regnamespace
        and not coalesce('search_path=""' = any (p.proconfig), false) $$,
  'every function in private runs with search_path = '''''
);

-- the checks above must see private's functions (guards against a vacuous query)
select cmp_ok(
  (select count(*)::integer from pg_proc p where p.pronamespace = 'private'::regnamespace),
  '>=',
  20,
  'the catalog query sees the functions in private'
);

select * from finish();
rollback;
