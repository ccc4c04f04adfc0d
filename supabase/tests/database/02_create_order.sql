-- Proves public.create_order(jsonb):
--   * anon cannot execute it (42501), nor can an authenticated role without a user id in its claims;
--   * for an authenticated user it writes an order owned by the caller, priced only from products:
--     total = Σ unit_price × quantity, tax_free likewise, the products' currency, order_name
--     '<first product> 외 N건' for several lines (the bare name for one), and one order_items row per line;
--   * bad input raises 22023 with the function's message: empty array, not an array, null, unknown or
--     inactive product, quantity 0 / 1000 / 1.5 / "2" / negative / missing, an extra key (e.g. a
--     client-chosen price), an item that is not an object, mixed currencies, more than 50 items.
--     A raising statement writes nothing; the final count shows only the successful calls left orders.
begin;
set local search_path = public, extensions, tests;

select plan(33);

-- Fixtures (as the superuser) ------------------------------------------------------------------------
do $$
begin
  perform tests.create_supabase_user('co-buyer');
  insert into public.products (id, name, unit_price, tax_free_price, currency, active) values
    ('co-beans',   '테스트 원두',  32000,     0, 'KRW', true),
    ('co-drip',    '테스트 드립백', 12000,     0, 'KRW', true),
    ('co-book',    '테스트 책',    18000, 18000, 'KRW', true),
    ('co-partial', '테스트 세트',   5000,  2000, 'KRW', true),
    ('co-hidden',  '단종 상품',     1000,     0, 'KRW', false),
    ('co-usd',     'USD item',     1500,   100, 'USD', true);
end
$$;

-- ====================================================================================================
-- who may call it
-- ====================================================================================================
select tests.clear_authentication();

select throws_ok(
  $$ select public.create_order('[{"product_id": "co-beans", "quantity": 1}]') $$,
  '42501', 'permission denied for function create_order',
  'anon: create_order is not executable'
);

-- authenticated role, but no subject in the claims: the function itself refuses
select tests.authenticate_as('co-buyer');
select set_config('request.jwt.claims', '{"role": "authenticated"}', true);
select throws_ok(
  $$ select public.create_order('[{"product_id": "co-beans", "quantity": 1}]') $$,
  '42501', 'create_order requires an authenticated user',
  'authenticated without a user id: create_order refuses'
);

-- ====================================================================================================
-- a priced order for the caller
-- ====================================================================================================
select tests.authenticate_as('co-buyer');

select results_eq(
  $$ select user_id, order_name, total_amount, tax_free_amount, currency, status
       from public.create_order('[{"product_id": "co-beans", "quantity": 2},
                                  {"product_id": "co-book", "quantity": 1},
                                  {"product_id": "co-partial", "quantity": 3}]') $$,
  $$ values (tests.get_supabase_uid('co-buyer'), '테스트 원두 외 2건', 97000::bigint, 24000::bigint, 'KRW', 'pending') $$,
  'three lines: owned by the caller, total 2×32000+18000+3×5000, tax-free 18000+3×2000, named "<first> 외 2건"'
);
select results_eq(
  $$ select i.line_no, i.product_id, i.product_name, i.unit_price, i.tax_free_price, i.quantity
       from public.order_items i join public.orders o on o.id = i.order_id
      where o.order_name = '테스트 원두 외 2건'
      order by i.line_no $$,
  $$ values (1::smallint, 'co-beans', '테스트 원두', 32000::bigint, 0::bigint, 2),
            (2::smallint, 'co-book', '테스트 책', 18000::bigint, 18000::bigint, 1),
            (3::smallint, 'co-partial', '테스트 세트', 5000::bigint, 2000::bigint, 3) $$,
  'three lines: one order_items row per line, in order, priced from products'
);

select results_eq(
  $$ select order_name, total_amount, tax_free_amount, currency
       from public.create_order('[{"product_id": "co-drip", "quantity": 999}]') $$,
  $$ values ('테스트 드립백', 11988000::bigint, 0::bigint, 'KRW') $$,
  'one line at the maximum quantity 999: the bare product name, 999×12000'
);

select results_eq(
  $$ select order_name, total_amount, tax_free_amount, currency
       from public.create_order('[{"product_id": "co-usd", "quantity": 2}]') $$,
  $$ values ('USD item', 3000::bigint, 200::bigint, 'USD') $$,
  'the order takes the products'' currency (USD)'
);

select results_eq(
  $$ select order_name, total_amount
       from public.create_order((select jsonb_agg(jsonb_build_object('product_id', 'co-drip', 'quantity', 1))
                                   from generate_series(1, 50))) $$,
  $$ values ('테스트 드립백 외 49건', 600000::bigint) $$,
  '50 items (the limit) are accepted'
);

select is(
  (select count(*) from public.order_items i join public.orders o on o.id = i.order_id
    where o.order_name = '테스트 드립백 외 49건'),
  50::bigint,
  '50 items: 50 order_items rows'
);

select is_empty(
  $$ select o.id
       from public.orders o join public.order_items i on i.order_id = o.id
      group by o.id, o.total_amount, o.tax_free_amount
     having o.total_amount <> sum(i.unit_price * i.quantity)
         or o.tax_free_amount <> sum(i.tax_free_price * i.quantity) $$,
  'every order of the caller equals the sum of its lines (total and tax-free)'
);

-- ====================================================================================================
-- bad input: 22023, nothing written
-- ====================================================================================================
select throws_ok($$ select public.create_order('[]') $$,
  '22023', 'items must be a non-empty array', 'an empty array is refused');
select throws_ok($$ select public.create_order('{"product_id": "co-beans", "quantity": 1}') $$,
  '22023', 'items must be a non-empty array', 'an object instead of an array is refused');
select throws_ok($$ select public.create_order('"co-beans"') $$,
  '22023', 'items must be a non-empty array', 'a string instead of an array is refused');
select throws_ok($$ select public.create_order(null) $$,
  '22023', 'items must be a non-empty array', 'null is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-nope", "quantity": 1}]') $$,
  '22023', 'unknown product', 'an unknown product is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-hidden", "quantity": 1}]') $$,
  '22023', 'unknown product', 'an inactive product is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": 1}, {"product_id": "co-hidden", "quantity": 1}]') $$,
  '22023', 'unknown product', 'an inactive product after a valid line is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": 0}]') $$,
  '22023', 'quantity must be an integer from 1 to 999', 'quantity 0 is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": 1000}]') $$,
  '22023', 'quantity must be an integer from 1 to 999', 'quantity 1000 is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": 1.5}]') $$,
  '22023', 'quantity must be an integer from 1 to 999', 'quantity 1.5 is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": -1}]') $$,
  '22023', 'quantity must be an integer from 1 to 999', 'a negative quantity is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": 1e10}]') $$,
  '22023', 'quantity must be an integer from 1 to 999', 'a huge quantity is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": "2"}]') $$,
  '22023', 'each item must be {"product_id": string, "quantity": integer}', 'a quantity given as a string is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": null}]') $$,
  '22023', 'each item must be {"product_id": string, "quantity": integer}', 'a null quantity is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans"}]') $$,
  '22023', 'each item must be {"product_id": string, "quantity": integer}', 'a missing quantity is refused');
select throws_ok($$ select public.create_order('[{"product_id": 1, "quantity": 1}]') $$,
  '22023', 'each item must be {"product_id": string, "quantity": integer}', 'a numeric product_id is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": 1, "unit_price": 1}]') $$,
  '22023', 'each item must be {"product_id": string, "quantity": integer}', 'an extra key (a client-chosen price) is refused');
select throws_ok($$ select public.create_order('["co-beans"]') $$,
  '22023', 'each item must be {"product_id": string, "quantity": integer}', 'an item that is not an object is refused');
select throws_ok($$ select public.create_order('[{"product_id": "co-beans", "quantity": 1}, {"product_id": "co-usd", "quantity": 1}]') $$,
  '22023', 'all items of an order must share one currency', 'mixed currencies are refused');
select throws_ok(
  $$ select public.create_order((select jsonb_agg(jsonb_build_object('product_id', 'co-drip', 'quantity', 1))
                                   from generate_series(1, 51))) $$,
  '22023', 'an order holds at most 50 items', '51 items are refused');

-- Only the four successful calls above left an order (and their lines) behind.
select bag_eq(
  $$ select order_name from public.orders $$,
  $$ values ('USD item'), ('테스트 드립백'), ('테스트 드립백 외 49건'), ('테스트 원두 외 2건') $$,
  'the caller owns exactly the four orders of the successful calls'
);
select is(
  (select count(*) from public.order_items), 55::bigint,
  'the caller''s orders hold exactly 3 + 1 + 1 + 50 lines'
);

-- ====================================================================================================
-- as the superuser: the rows really belong to the caller (not only as seen through RLS)
-- ====================================================================================================
select tests.reset_role();

select is(
  (select count(*) from public.orders
    where order_name in ('USD item', '테스트 드립백', '테스트 드립백 외 49건', '테스트 원두 외 2건')
      and user_id = tests.get_supabase_uid('co-buyer')),
  4::bigint,
  'superuser: the four orders are owned by the caller'
);
select is(
  (select count(*) from public.orders where user_id = tests.get_supabase_uid('co-buyer')),
  4::bigint,
  'superuser: the failed calls created no order for the caller'
);

select * from finish();
rollback;
