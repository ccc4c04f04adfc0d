-- Proves the persona matrix for the catalog and orders: products, orders, order_items, for
-- anon, the authenticated owner, another authenticated user and service_role, each with
-- select / insert / update / delete.
--   products:    anon and authenticated read active products only; every write is 42501.
--   orders,
--   order_items: anon gets 42501 for everything; the owner reads exactly their own rows, the other user
--                none of them; every client write is 42501 (no grant). service_role does everything
--                (marking an order paid names a payment of that order, recorded first; an order with a
--                payment is kept, so the delete runs on an order that never had one).
begin;
set local search_path = public, extensions, tests;

select plan(61);

-- Fixtures (as the superuser) ------------------------------------------------------------------------
do $$
declare
  owner_id uuid := tests.create_supabase_user('pm1-owner');
  other_id uuid := tests.create_supabase_user('pm1-other');
begin
  insert into public.products (id, name, unit_price, currency, active) values
    ('pm1-active', 'PM1 active', 1000, 'KRW', true),
    ('pm1-hidden', 'PM1 hidden', 2000, 'KRW', false);
  insert into public.orders (id, user_id, order_name, total_amount, currency) values
    ('a1000000-0000-4000-8000-000000000001', owner_id, 'PM1 active', 1000, 'KRW'),
    ('a1000000-0000-4000-8000-000000000002', other_id, 'PM1 active', 2000, 'KRW');
  insert into public.order_items (order_id, line_no, product_id, product_name, unit_price, quantity) values
    ('a1000000-0000-4000-8000-000000000001', 1, 'pm1-active', 'PM1 active', 1000, 1),
    ('a1000000-0000-4000-8000-000000000002', 1, 'pm1-active', 'PM1 active', 1000, 2);
end
$$;

-- ====================================================================================================
-- anon
-- ====================================================================================================
select tests.clear_authentication();

-- products
select results_eq(
  $$ select id from public.products where id like 'pm1-%' order by id $$,
  $$ values ('pm1-active') $$,
  'anon: products select returns the active product, not the inactive one'
);
select is_empty(
  $$ select id from public.products where not active $$,
  'anon: no inactive product is visible at all'
);
select throws_ok(
  $$ insert into public.products (id, name, unit_price) values ('pm1-anon', 'x', 1) $$,
  '42501', 'permission denied for table products', 'anon: products insert is refused'
);
select throws_ok(
  $$ update public.products set unit_price = 1 where id = 'pm1-active' $$,
  '42501', 'permission denied for table products', 'anon: products update is refused'
);
select throws_ok(
  $$ delete from public.products where id = 'pm1-active' $$,
  '42501', 'permission denied for table products', 'anon: products delete is refused'
);

-- orders
select throws_ok(
  $$ select id from public.orders $$,
  '42501', 'permission denied for table orders', 'anon: orders select is refused'
);
select throws_ok(
  $$ insert into public.orders (user_id, order_name, total_amount, currency)
     values (tests.get_supabase_uid('pm1-owner'), 'x', 1, 'KRW') $$,
  '42501', 'permission denied for table orders', 'anon: orders insert is refused'
);
select throws_ok(
  $$ update public.orders set status = 'paid' where id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table orders', 'anon: orders update is refused'
);
select throws_ok(
  $$ delete from public.orders where id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table orders', 'anon: orders delete is refused'
);

-- order_items
select throws_ok(
  $$ select order_id from public.order_items $$,
  '42501', 'permission denied for table order_items', 'anon: order_items select is refused'
);
select throws_ok(
  $$ insert into public.order_items (order_id, line_no, product_id, product_name, unit_price, quantity)
     values ('a1000000-0000-4000-8000-000000000001', 2, 'pm1-active', 'x', 1, 1) $$,
  '42501', 'permission denied for table order_items', 'anon: order_items insert is refused'
);
select throws_ok(
  $$ update public.order_items set quantity = 9 where order_id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table order_items', 'anon: order_items update is refused'
);
select throws_ok(
  $$ delete from public.order_items where order_id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table order_items', 'anon: order_items delete is refused'
);

-- ====================================================================================================
-- authenticated owner
-- ====================================================================================================
select tests.authenticate_as('pm1-owner');

-- products
select results_eq(
  $$ select id from public.products where id like 'pm1-%' order by id $$,
  $$ values ('pm1-active') $$,
  'owner: products select returns the active product, not the inactive one'
);
select is_empty(
  $$ select id from public.products where not active $$,
  'owner: no inactive product is visible at all'
);
select throws_ok(
  $$ insert into public.products (id, name, unit_price) values ('pm1-owner', 'x', 1) $$,
  '42501', 'permission denied for table products', 'owner: products insert is refused'
);
select throws_ok(
  $$ update public.products set unit_price = 1 where id = 'pm1-active' $$,
  '42501', 'permission denied for table products', 'owner: products update is refused'
);
select throws_ok(
  $$ delete from public.products where id = 'pm1-active' $$,
  '42501', 'permission denied for table products', 'owner: products delete is refused'
);

-- orders
select results_eq(
  $$ select id from public.orders $$,
  $$ values ('a1000000-0000-4000-8000-000000000001'::uuid) $$,
  'owner: orders select returns exactly their own order'
);
select throws_ok(
  $$ insert into public.orders (user_id, order_name, total_amount, currency)
     values (tests.get_supabase_uid('pm1-owner'), 'x', 1, 'KRW') $$,
  '42501', 'permission denied for table orders', 'owner: orders insert is refused'
);
select throws_ok(
  $$ update public.orders set total_amount = 1 where id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table orders', 'owner: orders update of their own order is refused'
);
select throws_ok(
  $$ delete from public.orders where id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table orders', 'owner: orders delete of their own order is refused'
);

-- order_items
select results_eq(
  $$ select order_id, line_no from public.order_items $$,
  $$ values ('a1000000-0000-4000-8000-000000000001'::uuid, 1::smallint) $$,
  'owner: order_items select returns exactly the lines of their own order'
);
select throws_ok(
  $$ insert into public.order_items (order_id, line_no, product_id, product_name, unit_price, quantity)
     values ('a1000000-0000-4000-8000-000000000001', 2, 'pm1-active', 'x', 1, 1) $$,
  '42501', 'permission denied for table order_items', 'owner: order_items insert is refused'
);
select throws_ok(
  $$ update public.order_items set unit_price = 1 where order_id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table order_items', 'owner: order_items update is refused'
);
select throws_ok(
  $$ delete from public.order_items where order_id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table order_items', 'owner: order_items delete is refused'
);

-- ====================================================================================================
-- another authenticated user
-- ====================================================================================================
select tests.authenticate_as('pm1-other');

-- products
select results_eq(
  $$ select id from public.products where id like 'pm1-%' order by id $$,
  $$ values ('pm1-active') $$,
  'other user: products select returns the active product, not the inactive one'
);
select throws_ok(
  $$ insert into public.products (id, name, unit_price) values ('pm1-other', 'x', 1) $$,
  '42501', 'permission denied for table products', 'other user: products insert is refused'
);
select throws_ok(
  $$ update public.products set active = false where id = 'pm1-active' $$,
  '42501', 'permission denied for table products', 'other user: products update is refused'
);
select throws_ok(
  $$ delete from public.products where id = 'pm1-active' $$,
  '42501', 'permission denied for table products', 'other user: products delete is refused'
);

-- orders
select is_empty(
  $$ select id from public.orders where id = 'a1000000-0000-4000-8000-000000000001' $$,
  'other user: the owner''s order is not visible'
);
select results_eq(
  $$ select id from public.orders $$,
  $$ values ('a1000000-0000-4000-8000-000000000002'::uuid) $$,
  'other user: orders select returns only their own order'
);
select throws_ok(
  $$ insert into public.orders (user_id, order_name, total_amount, currency)
     values (tests.get_supabase_uid('pm1-owner'), 'x', 1, 'KRW') $$,
  '42501', 'permission denied for table orders', 'other user: orders insert is refused'
);
select throws_ok(
  $$ update public.orders set status = 'cancelled' where id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table orders', 'other user: orders update is refused'
);
select throws_ok(
  $$ delete from public.orders where id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table orders', 'other user: orders delete is refused'
);

-- order_items
select is_empty(
  $$ select order_id from public.order_items where order_id = 'a1000000-0000-4000-8000-000000000001' $$,
  'other user: the lines of the owner''s order are not visible'
);
select throws_ok(
  $$ insert into public.order_items (order_id, line_no, product_id, product_name, unit_price, quantity)
     values ('a1000000-0000-4000-8000-000000000001', 2, 'pm1-active', 'x', 1, 1) $$,
  '42501', 'permission denied for table order_items', 'other user: order_items insert is refused'
);
select throws_ok(
  $$ update public.order_items set quantity = 9 where order_id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table order_items', 'other user: order_items update is refused'
);
select throws_ok(
  $$ delete from public.order_items where order_id = 'a1000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table order_items', 'other user: order_items delete is refused'
);

-- ====================================================================================================
-- service_role
-- ====================================================================================================
select tests.authenticate_as_service_role();

-- products
select results_eq(
  $$ select id from public.products where id like 'pm1-%' order by id $$,
  $$ values ('pm1-active'), ('pm1-hidden') $$,
  'service_role: products select includes inactive products'
);
select lives_ok(
  $$ insert into public.products (id, name, unit_price) values ('pm1-service', 'PM1 service', 500) $$,
  'service_role: products insert is allowed'
);
select lives_ok(
  $$ update public.products set unit_price = 700 where id = 'pm1-service' $$,
  'service_role: products update is allowed'
);
select is(
  (select unit_price from public.products where id = 'pm1-service'), 700::bigint,
  'service_role: the products update took effect'
);
select lives_ok(
  $$ delete from public.products where id = 'pm1-service' $$,
  'service_role: products delete is allowed'
);
select is_empty(
  $$ select id from public.products where id = 'pm1-service' $$,
  'service_role: the products delete took effect'
);

-- orders
select results_eq(
  $$ select id from public.orders
      where id in ('a1000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-000000000002')
      order by id $$,
  $$ values ('a1000000-0000-4000-8000-000000000001'::uuid), ('a1000000-0000-4000-8000-000000000002'::uuid) $$,
  'service_role: orders select sees every user''s orders'
);
select lives_ok(
  $$ insert into public.orders (id, user_id, order_name, total_amount, currency)
     values ('a1000000-0000-4000-8000-000000000003', tests.get_supabase_uid('pm1-owner'), 'svc', 1000, 'KRW'),
            ('a1000000-0000-4000-8000-000000000004', tests.get_supabase_uid('pm1-owner'), 'svc paid', 1000, 'KRW') $$,
  'service_role: orders insert is allowed'
);
-- the payment the service records before it marks order 4 paid (an order is paid only by its own payment)
insert into public.payments (id, order_id, user_id, store_id, status, total_amount, currency, paid_amount, paid_at)
values ('pm1_svc_payment_00004', 'a1000000-0000-4000-8000-000000000004', tests.get_supabase_uid('pm1-owner'),
        'store-test', 'PAID', 1000, 'KRW', 1000, now());
select lives_ok(
  $$ update public.orders set status = 'paid', paid_at = now(), paid_payment_id = 'pm1_svc_payment_00004'
      where id = 'a1000000-0000-4000-8000-000000000004' $$,
  'service_role: orders update is allowed'
);
select results_eq(
  $$ select status, paid_payment_id from public.orders where id = 'a1000000-0000-4000-8000-000000000004' $$,
  $$ values ('paid', 'pm1_svc_payment_00004') $$,
  'service_role: the orders update took effect'
);

-- order_items
select results_eq(
  $$ select order_id, line_no from public.order_items
      where order_id in ('a1000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-000000000002')
      order by order_id $$,
  $$ values ('a1000000-0000-4000-8000-000000000001'::uuid, 1::smallint),
            ('a1000000-0000-4000-8000-000000000002'::uuid, 1::smallint) $$,
  'service_role: order_items select sees every user''s lines'
);
select lives_ok(
  $$ insert into public.order_items (order_id, line_no, product_id, product_name, unit_price, quantity)
     values ('a1000000-0000-4000-8000-000000000003', 1, 'pm1-active', 'PM1 active', 1000, 1),
            ('a1000000-0000-4000-8000-000000000003', 2, 'pm1-active', 'PM1 active', 1000, 1) $$,
  'service_role: order_items insert is allowed'
);
select lives_ok(
  $$ update public.order_items set quantity = 3
      where order_id = 'a1000000-0000-4000-8000-000000000003' and line_no = 1 $$,
  'service_role: order_items update is allowed'
);
select is(
  (select quantity from public.order_items where order_id = 'a1000000-0000-4000-8000-000000000003' and line_no = 1),
  3,
  'service_role: the order_items update took effect'
);
select lives_ok(
  $$ delete from public.order_items where order_id = 'a1000000-0000-4000-8000-000000000003' and line_no = 2 $$,
  'service_role: order_items delete is allowed'
);
select results_eq(
  $$ select line_no from public.order_items where order_id = 'a1000000-0000-4000-8000-000000000003' $$,
  $$ values (1::smallint) $$,
  'service_role: the order_items delete removed exactly that line'
);
select lives_ok(
  $$ delete from public.orders where id = 'a1000000-0000-4000-8000-000000000003' $$,
  'service_role: orders delete is allowed'
);
select is_empty(
  $$ select id from public.orders where id = 'a1000000-0000-4000-8000-000000000003' $$,
  'service_role: the orders delete took effect'
);
select is_empty(
  $$ select line_no from public.order_items where order_id = 'a1000000-0000-4000-8000-000000000003' $$,
  'service_role: deleting an order cascades to its lines'
);

-- ====================================================================================================
-- back as the superuser: nothing the refused personas tried changed the fixtures
-- ====================================================================================================
select tests.reset_role();

select results_eq(
  $$ select id, unit_price, active from public.products where id like 'pm1-%' order by id $$,
  $$ values ('pm1-active', 1000::bigint, true), ('pm1-hidden', 2000::bigint, false) $$,
  'superuser: the products fixtures are unchanged'
);
select results_eq(
  $$ select id, total_amount, status from public.orders
      where id in ('a1000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-000000000002')
      order by id $$,
  $$ values ('a1000000-0000-4000-8000-000000000001'::uuid, 1000::bigint, 'pending'),
            ('a1000000-0000-4000-8000-000000000002'::uuid, 2000::bigint, 'pending') $$,
  'superuser: the orders fixtures are unchanged'
);
select results_eq(
  $$ select order_id, line_no, unit_price, quantity from public.order_items
      where order_id in ('a1000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-000000000002')
      order by order_id $$,
  $$ values ('a1000000-0000-4000-8000-000000000001'::uuid, 1::smallint, 1000::bigint, 1),
            ('a1000000-0000-4000-8000-000000000002'::uuid, 1::smallint, 1000::bigint, 2) $$,
  'superuser: the order_items fixtures are unchanged'
);

select * from finish();
rollback;
