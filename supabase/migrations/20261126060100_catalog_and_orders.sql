-- Purpose: the server-side price list and orders. Clients never send amounts: an order is priced here,
-- from `products`, by `create_order`, and every later payment is checked against the order's total.
-- Touches: schema private, tables products, orders, order_items, function create_order.

create schema if not exists private;
revoke all on schema private from public;
comment on schema private is 'Internal helpers; never exposed through the API.';

-- products -------------------------------------------------------------------------------------------
create table public.products (
  id text primary key check (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  name text not null check (char_length(name) between 1 and 200),
  unit_price bigint not null check (unit_price > 0),
  tax_free_price bigint not null default 0 check (tax_free_price >= 0 and tax_free_price <= unit_price),
  currency text not null default 'KRW' check (currency ~ '^[A-Z]{3}$'),
  active boolean not null default true,
  created_at timestamptz not null default now()
);
comment on table public.products is 'Server-side price list. Amounts are integer minor units of currency (KRW: whole won).';

alter table public.products enable row level security;
revoke all on table public.products from anon, authenticated, service_role;
grant select on table public.products to anon, authenticated;
grant select, insert, update, delete on table public.products to service_role;

create policy "Anyone can read active products"
on public.products for select
to anon, authenticated
using (active);

-- orders ---------------------------------------------------------------------------------------------
create table public.orders (
  id uuid primary key default gen_random_uuid(),
  -- restrict: money records outlive accounts; a user with orders is deactivated, not deleted
  user_id uuid not null references auth.users (id) on delete restrict,
  order_name text not null check (char_length(order_name) between 1 and 200),
  total_amount bigint not null check (total_amount > 0),
  tax_free_amount bigint not null default 0 check (tax_free_amount >= 0 and tax_free_amount <= total_amount),
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  status text not null default 'pending'
    check (status in ('pending', 'paid', 'partial_cancelled', 'cancelled')),
  paid_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.orders is 'A priced order. Its status follows the payment that paid it; only the service changes it.';
comment on column public.orders.status is 'pending until a payment is verified as PAID; then paid, partial_cancelled, cancelled.';
create index orders_user_id_idx on public.orders (user_id);

alter table public.orders enable row level security;
revoke all on table public.orders from anon, authenticated, service_role;
grant select on table public.orders to authenticated;
grant select, insert, update, delete on table public.orders to service_role;

create policy "Users can read their own orders"
on public.orders for select
to authenticated
using ((select auth.uid()) = user_id);

create table public.order_items (
  order_id uuid not null references public.orders (id) on delete cascade,
  line_no smallint not null check (line_no >= 1),
  product_id text not null references public.products (id) on delete restrict,
  product_name text not null,
  unit_price bigint not null check (unit_price > 0),
  tax_free_price bigint not null default 0 check (tax_free_price >= 0 and tax_free_price <= unit_price),
  quantity integer not null check (quantity between 1 and 999),
  primary key (order_id, line_no)
);
comment on table public.order_items is 'Order lines, priced from products at order time.';
create index order_items_product_id_idx on public.order_items (product_id);

alter table public.order_items enable row level security;
revoke all on table public.order_items from anon, authenticated, service_role;
grant select on table public.order_items to authenticated;
grant select, insert, update, delete on table public.order_items to service_role;

create policy "Users can read lines of their own orders"
on public.order_items for select
to authenticated
using (
  exists (
    select 1 from public.orders o
    where o.id = order_items.order_id and o.user_id = (select auth.uid())
  )
);

-- create_order ---------------------------------------------------------------------------------------
-- Security definer because callers may not insert orders themselves; it writes only rows owned by the
-- caller, priced from products, so a client can never choose an amount.
create or replace function public.create_order(items jsonb)
returns public.orders
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := (select auth.uid());
  item jsonb;
  product public.products;
  quantity integer;
  lines jsonb := '[]'::jsonb;
  order_currency text;
  total bigint := 0;
  tax_free bigint := 0;
  first_name text;
  line_count integer := 0;
  created public.orders;
begin
  if caller is null then
    raise exception 'create_order requires an authenticated user' using errcode = '42501';
  end if;
  if items is null or jsonb_typeof(items) <> 'array' or jsonb_array_length(items) = 0 then
    raise exception 'items must be a non-empty array' using errcode = '22023';
  end if;
  if jsonb_array_length(items) > 50 then
    raise exception 'an order holds at most 50 items' using errcode = '22023';
  end if;

  for item in select value from jsonb_array_elements(items)
  loop
    if jsonb_typeof(item) <> 'object'
      or jsonb_typeof(item -> 'product_id') is distinct from 'string'
      or jsonb_typeof(item -> 'quantity') is distinct from 'number'
      or (select count(*) from jsonb_object_keys(item)) <> 2
    then
      raise exception 'each item must be {"product_id": string, "quantity": integer}' using errcode = '22023';
    end if;
    if (item ->> 'quantity') !~ '^[0-9]{1,3}$' or (item ->> 'quantity')::integer not between 1 and 999 then
      raise exception 'quantity must be an integer from 1 to 999' using errcode = '22023';
    end if;
    quantity := (item ->> 'quantity')::integer;

    select * into product from public.products p where p.id = item ->> 'product_id' and p.active;
    if not found then
      raise exception 'unknown product' using errcode = '22023';
    end if;
    if order_currency is null then
      order_currency := product.currency;
      first_name := product.name;
    elsif order_currency <> product.currency then
      raise exception 'all items of an order must share one currency' using errcode = '22023';
    end if;

    line_count := line_count + 1;
    total := total + product.unit_price * quantity;
    tax_free := tax_free + product.tax_free_price * quantity;
    lines := lines || jsonb_build_object(
      'line_no', line_count, 'product_id', product.id, 'product_name', product.name,
      'unit_price', product.unit_price, 'tax_free_price', product.tax_free_price, 'quantity', quantity
    );
  end loop;

  insert into public.orders (user_id, order_name, total_amount, tax_free_amount, currency)
  values (
    caller,
    left(case when line_count > 1 then first_name || ' 외 ' || (line_count - 1) || '건' else first_name end, 200),
    total,
    tax_free,
    order_currency
  )
  returning * into created;

  insert into public.order_items (order_id, line_no, product_id, product_name, unit_price, tax_free_price, quantity)
  select created.id, (l ->> 'line_no')::smallint, l ->> 'product_id', l ->> 'product_name',
         (l ->> 'unit_price')::bigint, (l ->> 'tax_free_price')::bigint, (l ->> 'quantity')::integer
  from jsonb_array_elements(lines) as l;

  return created;
end;
$$;
comment on function public.create_order(jsonb) is
  'Creates an order for the caller from [{"product_id", "quantity"}], priced from products.';
revoke execute on function public.create_order(jsonb) from public, anon;
grant execute on function public.create_order(jsonb) to authenticated;
