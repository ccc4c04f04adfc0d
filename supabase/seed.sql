-- Demo products for the local stack. Prices are integer KRW (whole won).
insert into public.products (id, name, unit_price, tax_free_price, currency) values
  ('coffee-beans', '원두 1kg', 32000, 0, 'KRW'),
  ('drip-bags', '드립백 10개입', 12000, 0, 'KRW'),
  ('book', '커피 입문서', 18000, 18000, 'KRW')
on conflict (id) do nothing;
