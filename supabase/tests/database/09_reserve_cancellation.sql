-- Proves private.reserve_cancellation (cancel's reservation in one call) keeps cancel's rules, in order:
--   * a missing payment, or another user's for a non-admin: PC001 'Payment not found';
--   * a customer while customers may not cancel: PC002; an admin may;
--   * a key already used: the same request (amount / tax-free omitted or equal, same payment) returns that
--     cancellation and writes nothing; any other request with it is PC003; a FAILED one is returned as is;
--     a virtual account's retry that PortOne never acknowledged needs the refund account again (PC007);
--   * another REQUESTED cancellation of the payment: PC004, before the status and amount checks;
--   * only a PAID or PARTIAL_CANCELLED payment: PC005 'A <status> payment cannot be cancelled';
--   * 0 < amount <= paid − cancelled, else PC006 with {"cancellableAmount"}; tax-free ≤ what is left of it
--     and ≤ the amount, else PC006 with {"field", "cancellableTaxFreeAmount"};
--   * a virtual account needs a refund account (PC007), with the phone number where the PG needs one
--     (PC008 with {"field"}); only a virtual account's masked account is stored;
--   * a new reservation is REQUESTED with the request PortOne will get (amount, tax-free, the balance as
--     currentCancellableAmount, the key, ADMIN or CUSTOMER), adds its amount to cancel_reserved_amount and
--     records one 'cancel_requested' event;
--   * no API role may call it.
begin;
set local search_path = public, extensions, tests;

select plan(37);

do $$
declare
  buyer uuid := tests.create_supabase_user('rc-buyer');
begin
  perform tests.create_supabase_user('rc-stranger');
  insert into public.orders (id, user_id, order_name, total_amount, tax_free_amount, currency) values
    ('a8000000-0000-4000-8000-000000000001', buyer, 'RC order', 10000, 3000, 'KRW');
  insert into public.payments (id, order_id, user_id, store_id, status, total_amount, tax_free_amount, currency,
                               paid_amount, paid_at, method_type, pg_provider)
  values
    ('rc_card_payment_00001', 'a8000000-0000-4000-8000-000000000001', buyer, 'store-test', 'PAID', 10000, 3000,
     'KRW', 10000, now(), 'CARD', 'TOSSPAYMENTS'),
    ('rc_ready_payment_0001', 'a8000000-0000-4000-8000-000000000001', buyer, 'store-test', 'READY', 10000, 3000,
     'KRW', 0, null, null, null),
    ('rc_va_payment_0000001', 'a8000000-0000-4000-8000-000000000001', buyer, 'store-test', 'PAID', 10000, 3000,
     'KRW', 10000, now(), 'VIRTUAL_ACCOUNT', 'SMARTRO_V2');
end
$$;

-- Calls the function the way cancel.ts does (reason 'x', the phone-requiring PGs of banks.ts).
create function pg_temp.reserve(
  payment text, caller text, admin boolean, allow boolean, key text, amount bigint, tax_free bigint,
  account jsonb default null, has_phone boolean default false
) returns setof record
language sql as $$
  select status, amount, tax_free_amount, requester, current_cancellable_amount, failure_reason, method_type,
         payment_status, cancelled_amount, cancellable_amount
  from private.reserve_cancellation(payment, tests.get_supabase_uid(caller), admin, allow, key, amount, tax_free,
    'x', account, has_phone, array['SMARTRO', 'SMARTRO_V2'])
$$;

-- 'SQLSTATE|message|detail' of what a statement raises ('' when it raises nothing).
create function pg_temp.refusal(statement text) returns text
language plpgsql as $$
declare
  state text;
  message text;
  detail text;
begin
  execute statement;
  return '';
exception when others then
  get stacked diagnostics state = returned_sqlstate, message = message_text, detail = pg_exception_detail;
  return state || '|' || message || '|' || coalesce(detail, '');
end
$$;

create function pg_temp.call(payment text, caller text, admin boolean, allow boolean, key text, amount bigint,
  tax_free bigint, account jsonb default null, has_phone boolean default false) returns text
language sql as $$
  select format('select * from pg_temp.reserve(%L, %L, %L, %L, %L, %L, %L, %L, %L) as r(status text, '
    'amount bigint, tax_free_amount bigint, requester text, current_cancellable_amount bigint, failure_reason text, '
    'method_type text, payment_status text, cancelled_amount bigint, cancellable_amount bigint)',
    payment, caller, admin, allow, key, amount, tax_free, account, has_phone)
$$;

create function pg_temp.footprint(payment text) returns text
language sql as $$
  select format('%s reserved, %s cancellations, %s events',
    (select cancel_reserved_amount from public.payments where id = payment),
    (select count(*) from public.payment_cancellations where payment_id = payment),
    (select count(*) from public.payment_events where payment_id = payment))
$$;

-- Who may cancel ---------------------------------------------------------------------------------------
select is(pg_temp.refusal(pg_temp.call('rc_missing_payment_01', 'rc-buyer', true, true, 'rc-key-missing-0001', 1, null)),
  'PC001|Payment not found|', 'a missing payment is not found, even for an admin');
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-stranger', false, true, 'rc-key-stranger-001', 1, null)),
  'PC001|Payment not found|', 'another user''s payment is not found');
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', false, false, 'rc-key-denied-00001', 99999, null)),
  'PC002|Cancelling is not open to customers; ask the merchant|',
  'a customer is forbidden while customers may not cancel, before the amounts are checked');

-- What may be cancelled --------------------------------------------------------------------------------
select is(pg_temp.refusal(pg_temp.call('rc_ready_payment_0001', 'rc-buyer', true, false, 'rc-key-ready-000001', 99999, null)),
  'PC005|A READY payment cannot be cancelled|', 'an unpaid payment cannot be cancelled, before the amounts');
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-over-0000001', 10001, 9999)),
  'PC006|At most 10000 can be cancelled|{"cancellableAmount": 10000}', 'more than the balance, before the tax-free part');
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-zero-0000001', 0, null)),
  'PC006|At most 10000 can be cancelled|{"cancellableAmount": 10000}', 'a zero amount');
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-taxfree-0001', 5000, 3001)),
  'PC006|At most 3000 tax-free can be cancelled|{"field": "taxFreeAmount", "cancellableTaxFreeAmount": 3000}',
  'more tax-free than is left of it');
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-taxfree-0002', 1000, 2000)),
  'PC006|At most 1000 tax-free can be cancelled|{"field": "taxFreeAmount", "cancellableTaxFreeAmount": 3000}',
  'more tax-free than the amount');
select is(pg_temp.footprint('rc_card_payment_00001'), '0 reserved, 0 cancellations, 0 events', 'refusals write nothing');

-- A new reservation ------------------------------------------------------------------------------------
select results_eq(
  pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-first-000001', 4000, 1000,
    '{"bank": "SHINHAN", "numberMasked": "****6789", "holderName": "홍**"}', false),
  $$ values ('REQUESTED', 4000::bigint, 1000::bigint, 'ADMIN', 10000::bigint, null::text, 'CARD', 'PAID', 0::bigint,
             10000::bigint) $$,
  'an admin''s reservation: REQUESTED, with the balance it was made against and the payment as it stands'
);
select is(pg_temp.footprint('rc_card_payment_00001'), '4000 reserved, 1 cancellations, 1 events',
  'the amount is reserved and one event recorded');
select is(
  (select row(c.status, c.amount, c.tax_free_amount, c.requester, c.requested_by = tests.get_supabase_uid('rc-buyer'),
              c.current_cancellable_amount, c.refund_account_masked, c.reason)::text
   from public.payment_cancellations c where c.idempotency_key = 'rc-key-first-000001'),
  '(REQUESTED,4000,1000,ADMIN,t,10000,,x)', 'the stored request; a card payment stores no refund account');
select is(
  (select e.detail - 'cancellationId' || jsonb_build_object('same', (e.detail ->> 'cancellationId')::uuid = c.id)
   from public.payment_events e join public.payment_cancellations c on c.idempotency_key = 'rc-key-first-000001'
   where e.payment_id = 'rc_card_payment_00001' and e.kind = 'cancel_requested' and e.source = 'cancel'
     and e.from_status = 'PAID' and e.to_status = 'PAID'),
  '{"same": true, "amount": 4000, "requester": "ADMIN", "taxFreeAmount": 1000}'::jsonb,
  'the cancel_requested event names the cancellation, its amounts and requester');

-- One in flight, and retries of it ---------------------------------------------------------------------
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-second-00001', 99999, null)),
  'PC004|Another cancellation of this payment is in progress; retry shortly|',
  'a second cancellation while one is in flight, before the amounts are checked');
select results_eq(
  pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-first-000001', null, null),
  $$ values ('REQUESTED', 4000::bigint, 1000::bigint, 'ADMIN', 10000::bigint, null::text, 'CARD', 'PAID', 0::bigint,
             10000::bigint) $$,
  'the same key with the amounts omitted returns the same cancellation'
);
select results_eq(
  pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-first-000001', 4000, 1000),
  $$ values ('REQUESTED', 4000::bigint, 1000::bigint, 'ADMIN', 10000::bigint, null::text, 'CARD', 'PAID', 0::bigint,
             10000::bigint) $$,
  'the same key with the same amounts returns the same cancellation'
);
select is(pg_temp.footprint('rc_card_payment_00001'), '4000 reserved, 1 cancellations, 1 events', 'a retry writes nothing');
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-first-000001', 3000, null)),
  'PC003|This Idempotency-Key was used for a different cancellation|', 'the key with another amount');
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-first-000001', null, 0)),
  'PC003|This Idempotency-Key was used for a different cancellation|', 'the key with another tax-free amount');
select is(pg_temp.refusal(pg_temp.call('rc_va_payment_0000001', 'rc-buyer', true, false, 'rc-key-first-000001', null, null)),
  'PC003|This Idempotency-Key was used for a different cancellation|', 'the key for another payment');

-- settled, as PortOne refused it: a retry gets the row back to answer the refusal again
update public.payment_cancellations set status = 'FAILED', failure_reason = 'PAYMENT_NOT_PAID', settled_at = now()
where idempotency_key = 'rc-key-first-000001';
update public.payments set cancel_reserved_amount = 0 where id = 'rc_card_payment_00001';
select results_eq(
  pg_temp.call('rc_card_payment_00001', 'rc-buyer', true, false, 'rc-key-first-000001', 4000, null),
  $$ values ('FAILED', 4000::bigint, 1000::bigint, 'ADMIN', 10000::bigint, 'PAYMENT_NOT_PAID', 'CARD', 'PAID',
             0::bigint, 10000::bigint) $$,
  'a refused cancellation is returned as it is'
);

-- A customer, after a settled partial cancel -----------------------------------------------------------
update public.payments set status = 'PARTIAL_CANCELLED', cancelled_amount = 4000, cancelled_tax_free_amount = 2500
where id = 'rc_card_payment_00001';
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', false, true, 'rc-key-customer-001', 6001, null)),
  'PC006|At most 6000 can be cancelled|{"cancellableAmount": 6000}', 'the balance is paid − cancelled');
select is(pg_temp.refusal(pg_temp.call('rc_card_payment_00001', 'rc-buyer', false, true, 'rc-key-customer-001', 6000, 501)),
  'PC006|At most 500 tax-free can be cancelled|{"field": "taxFreeAmount", "cancellableTaxFreeAmount": 500}',
  'the tax-free left is tax-free − cancelled tax-free');
select results_eq(
  pg_temp.call('rc_card_payment_00001', 'rc-buyer', false, true, 'rc-key-customer-001', null, null),
  $$ values ('REQUESTED', 6000::bigint, 0::bigint, 'CUSTOMER', 6000::bigint, null::text, 'CARD', 'PARTIAL_CANCELLED',
             4000::bigint, 6000::bigint) $$,
  'the owner may cancel what is left when customers may; no amount means all of it, no tax-free none'
);
select is(pg_temp.footprint('rc_card_payment_00001'), '6000 reserved, 2 cancellations, 2 events',
  'the customer''s reservation is recorded');

-- Virtual accounts -------------------------------------------------------------------------------------
select is(pg_temp.refusal(pg_temp.call('rc_va_payment_0000001', 'rc-buyer', true, false, 'rc-key-va-over-0001', 10001, null)),
  'PC006|At most 10000 can be cancelled|{"cancellableAmount": 10000}', 'a virtual account: amounts are checked first');
select is(pg_temp.refusal(pg_temp.call('rc_va_payment_0000001', 'rc-buyer', true, false, 'rc-key-va-0000001', 1000, null)),
  'PC007|A virtual-account payment is refunded to a bank account: send refundAccount|',
  'a virtual account needs a refund account');
select is(pg_temp.refusal(pg_temp.call('rc_va_payment_0000001', 'rc-buyer', true, false, 'rc-key-va-0000001', 1000, null,
    '{"bank": "SHINHAN", "numberMasked": "****6789", "holderName": "홍**"}', false)),
  'PC008|This PG needs refundAccount.holderPhoneNumber|{"field": "refundAccount.holderPhoneNumber"}',
  'with the holder''s phone number where the PG needs it');
select is(pg_temp.footprint('rc_va_payment_0000001'), '0 reserved, 0 cancellations, 0 events', 'refusals write nothing');
select results_eq(
  pg_temp.call('rc_va_payment_0000001', 'rc-buyer', true, false, 'rc-key-va-0000001', 1000, null,
    '{"bank": "SHINHAN", "numberMasked": "****6789", "holderName": "홍**"}', true),
  $$ values ('REQUESTED', 1000::bigint, 0::bigint, 'ADMIN', 10000::bigint, null::text, 'VIRTUAL_ACCOUNT', 'PAID',
             0::bigint, 10000::bigint) $$,
  'a virtual account with a complete refund account is reserved'
);
select is((select refund_account_masked from public.payment_cancellations where idempotency_key = 'rc-key-va-0000001'),
  '{"bank": "SHINHAN", "numberMasked": "****6789", "holderName": "홍**"}'::jsonb, 'its masked account is stored');
select is(pg_temp.refusal(pg_temp.call('rc_va_payment_0000001', 'rc-buyer', true, false, 'rc-key-va-0000001', 1000, null)),
  'PC007|A virtual-account payment is refunded to a bank account: send refundAccount|',
  'a retry of a request PortOne never acknowledged needs the account again');
update public.payment_cancellations set portone_cancellation_id = 'rc-portone-cancel-1'
where idempotency_key = 'rc-key-va-0000001';
select results_eq(
  pg_temp.call('rc_va_payment_0000001', 'rc-buyer', true, false, 'rc-key-va-0000001', 1000, null),
  $$ values ('REQUESTED', 1000::bigint, 0::bigint, 'ADMIN', 10000::bigint, null::text, 'VIRTUAL_ACCOUNT', 'PAID',
             0::bigint, 10000::bigint) $$,
  'a retry of one PortOne holds is returned without the account (it is not sent again)'
);

-- Privileges -------------------------------------------------------------------------------------------
select ok(not has_function_privilege('anon',
  'private.reserve_cancellation(text, uuid, boolean, boolean, text, bigint, bigint, text, jsonb, boolean, text[])',
  'execute'), 'anon cannot reserve');
select ok(not has_function_privilege('authenticated',
  'private.reserve_cancellation(text, uuid, boolean, boolean, text, bigint, bigint, text, jsonb, boolean, text[])',
  'execute'), 'authenticated cannot reserve');
select ok(not has_function_privilege('service_role',
  'private.reserve_cancellation(text, uuid, boolean, boolean, text, bigint, bigint, text, jsonb, boolean, text[])',
  'execute'), 'service_role cannot reserve');
select ok(not has_function_privilege('authenticated', 'private.require_refund_account(text, jsonb, boolean, text[])',
  'execute'), 'authenticated cannot call the refund-account check');

select * from finish();
rollback;
