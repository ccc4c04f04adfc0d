-- Purpose: the Idempotency-Key claim, prepare's attempt reservation and the saved-card charge's attempt
-- reservation each as ONE database call (issue #14: round trips, not statements, are the cost). The rules
-- are the ones shared/payments/prepare.ts and shared/billing/charge.ts applied in TypeScript before, moved
-- as they were; every money rule of the tables (triggers, constraints) still applies to what these write.
-- Touches: functions private.claim_idempotency_key, private.reserve_payment_attempt,
-- private.reserve_billing_attempt.
--
-- Refusals are raised with SQLSTATEs of class PT and the message the client sees, mapped to the same
-- error codes in shared/payments/refusals.ts:
--   PT001 not_found · PT002 order_not_payable · PT003 payment_in_progress · PT004 billing_key_not_active ·
--   PT005 misconfigured (a saved card that does not open; the caller rethrows its own error)

-- Idempotency-Key claim ------------------------------------------------------------------------------
-- Claims (user, route, key) for a request, or reports what holds it; see shared/infra/idempotency.ts.
-- p_requirements are the caller's preconditions (e.g. "the order is the caller's"), evaluated by the calling
-- statement: the first one that is not true is reported as `refused` (1-based) and nothing is written, not
-- even the claim. Each statement below takes its own snapshot, so the read after a lost insert race sees
-- the row that won it.
create or replace function private.claim_idempotency_key(
  p_user_id uuid,
  p_route text,
  p_key text,
  p_request_hash text,
  p_lease_seconds double precision,
  p_requirements boolean[] default '{}'
)
returns table (
  refused integer,
  claim_id bigint,
  claimed_at text,
  stored_request_hash text,
  stored_status text,
  stored_response_status integer,
  stored_response_body jsonb
)
language plpgsql
security invoker
set search_path = ''
as $$
begin
  for i in 1 .. coalesce(cardinality(p_requirements), 0) loop
    if p_requirements[i] is not true then
      refused := i;
      return next;
      return;
    end if;
  end loop;

  -- a fresh key, an expired reply, or a claim of the same request whose lease ran out (its owner died)
  -- created_at travels as text: the caller fences its later writes with it, to the microsecond
  insert into public.idempotency_keys as k (user_id, route, key, request_hash, status, locked_until)
  values (p_user_id, p_route, p_key, p_request_hash, 'in_progress',
          now() + make_interval(secs => p_lease_seconds))
  on conflict (user_id, route, key) do update set
    request_hash = excluded.request_hash, status = 'in_progress', locked_until = excluded.locked_until,
    response_status = null, response_body = null, created_at = now(), completed_at = null,
    expires_at = now() + interval '24 hours'
  where k.expires_at < now()
     or (k.status = 'in_progress' and k.locked_until < now() and k.request_hash = excluded.request_hash)
  returning k.id, k.created_at::text into claim_id, claimed_at;
  if found then
    return next;
    return;
  end if;

  select k.request_hash, k.status, k.response_status, k.response_body
  into stored_request_hash, stored_status, stored_response_status, stored_response_body
  from public.idempotency_keys k
  where k.user_id = p_user_id and k.route = p_route and k.key = p_key;
  return next;
end;
$$;
comment on function private.claim_idempotency_key(uuid, text, text, text, double precision, boolean[]) is
  'Claims an Idempotency-Key for a request (or reports the stored reply / the claim holding it), in one call.';
revoke all on function private.claim_idempotency_key(uuid, text, text, text, double precision, boolean[])
  from public, anon, authenticated, service_role;

-- prepare --------------------------------------------------------------------------------------------
-- Finds the order's live attempt or creates one, under the order's row lock so racing prepares agree. The
-- order is locked before any of its payments, the one lock order the sync and the billing charge follow too.
-- Someone else's order and a missing one look the same. A second attempt while money may still arrive
-- through the first (pending, or an open virtual account) is refused: it would risk a double payment.
create or replace function private.reserve_payment_attempt(
  p_user_id uuid,
  p_order_id text,
  p_channel_key text,
  p_store_id text,
  p_new_payment_id text
)
returns table (
  id text,
  order_name text,
  total_amount bigint,
  tax_free_amount bigint,
  currency text,
  pre_registered_at timestamptz
)
language plpgsql
security invoker
set search_path = ''
as $$
declare
  v_order record;
  v_blocking text;
begin
  select o.status, o.order_name into v_order
  from public.orders o
  where o.id = p_order_id::uuid and o.user_id = p_user_id
  for update;
  if not found then
    raise exception 'Order not found' using errcode = 'PT001';
  end if;
  if v_order.status <> 'pending' then
    raise exception 'Order is %', v_order.status using errcode = 'PT002';
  end if;

  select p.id into v_blocking
  from public.payments p
  where p.order_id = p_order_id::uuid and p.mismatch_reason is null
    and (p.status = 'PAY_PENDING'
         or (p.status = 'VIRTUAL_ACCOUNT_ISSUED'
             and (p.virtual_account_expires_at is null or p.virtual_account_expires_at > clock_timestamp())))
  order by p.created_at desc
  limit 1;
  if found then
    raise exception 'Payment % for this order is in progress', v_blocking using errcode = 'PT003';
  end if;

  -- the newest open attempt is handed out again, through the channel this request asks for
  return query
  update public.payments p set channel_key = p_channel_key
  from (
    select r.id from public.payments r
    where r.order_id = p_order_id::uuid and r.mismatch_reason is null and r.status = 'READY'
    order by r.created_at desc
    limit 1
  ) ready
  where p.id = ready.id
  returning p.id, v_order.order_name, p.total_amount, p.tax_free_amount, p.currency, p.pre_registered_at;
  if found then
    return;
  end if;

  return query
  insert into public.payments as p
    (id, order_id, user_id, store_id, channel_key, total_amount, tax_free_amount, currency)
  select p_new_payment_id, o.id, o.user_id, p_store_id, p_channel_key, o.total_amount, o.tax_free_amount,
         o.currency
  from public.orders o
  where o.id = p_order_id::uuid
  returning p.id, v_order.order_name, p.total_amount, p.tax_free_amount, p.currency, p.pre_registered_at;
  insert into public.payment_events (payment_id, source, kind, to_status, detail)
  values (p_new_payment_id, 'prepare', 'created', 'READY', jsonb_build_object('orderId', p_order_id));
end;
$$;
comment on function private.reserve_payment_attempt(uuid, text, text, text, text) is
  'prepare: the order''s open attempt (its channel updated) or a new one, refusing while money may arrive.';
revoke all on function private.reserve_payment_attempt(uuid, text, text, text, text)
  from public, anon, authenticated, service_role;

-- saved-card charge ----------------------------------------------------------------------------------
-- Finds or creates the attempt a saved card charges, under the order's row lock (shared/billing/charge.ts
-- tells why each rule exists). The caller has read the key's sealed value beforehand (p_sealed_seen, null if
-- it found none) and tried to open it — the data keys never reach the database — so:
--   * p_open_refusal: why it does not open (null if it does); raised as PT005 where the charge would need the
--     key, after every other refusal and before anything is written;
--   * p_resealed: its value re-sealed under the current key when the row needs that (null if not), stored
--     in this transaction, only if the row still holds p_sealed_seen.
-- Outcomes: 'reserved' (the attempt to charge), 'settled' (an earlier try of this very request, p_request_key,
-- got its attempt settled at PortOne), 'key_changed' (the key's value is no longer p_sealed_seen: read and
-- open it again; nothing written).
-- An open attempt of this order made by prepare (or by this key) is reused, so a retry charges the same
-- paymentId; a FAILED one never is. Another key's open attempt younger than p_in_flight_seconds may be
-- charging right now and blocks, like a pending payment or an open virtual account.
create or replace function private.reserve_billing_attempt(
  p_user_id uuid,
  p_billing_key_id text,
  p_order_id text,
  p_request_key text,
  p_store_id text,
  p_channel_key text,
  p_in_flight_seconds integer,
  p_new_payment_id text,
  p_sealed_seen text,
  p_open_refusal text,
  p_resealed text
)
returns table (
  outcome text,
  payment_id text,
  taken_over_from_window boolean,
  order_name text,
  total_amount bigint,
  tax_free_amount bigint,
  currency text
)
language plpgsql
security invoker
set search_path = ''
as $$
declare
  v_key record;
  v_order record;
  v_own record;
  v_blocking text;
  v_reusable record;
  v_details jsonb := jsonb_build_object(
    'orderId', p_order_id, 'billingKeyId', p_billing_key_id, 'requestKey', p_request_key);
begin
  select k.billing_key, k.status, k.store_id, k.channel_key into v_key
  from public.billing_keys k
  where k.id = p_billing_key_id::uuid and k.user_id = p_user_id;
  if not found then
    raise exception 'Billing key not found' using errcode = 'PT001';
  end if;
  if v_key.status <> 'ISSUED' or v_key.store_id <> p_store_id then
    raise exception 'The billing key is deleted' using errcode = 'PT004';
  end if;
  -- charges report the key's channel; one the store no longer configures would pay nothing
  if v_key.channel_key is not null and v_key.channel_key <> p_channel_key then
    raise exception 'The billing key was issued through another channel' using errcode = 'PT004';
  end if;

  select o.status, o.order_name into v_order
  from public.orders o
  where o.id = p_order_id::uuid and o.user_id = p_user_id
  for update;
  if not found then
    raise exception 'Order not found' using errcode = 'PT001';
  end if;

  -- an earlier try of this very request whose reply was lost after PortOne settled its attempt (a webhook
  -- may have marked the order paid since): answer from that attempt, charge nothing
  select p.id, p.status into v_own
  from public.payments p
  where p.order_id = p_order_id::uuid
    and exists (select from public.payment_events e
                where e.payment_id = p.id and e.source = 'billing' and e.detail ->> 'requestKey' = p_request_key)
  order by p.created_at desc
  limit 1;
  if found and v_own.status <> 'READY' then
    outcome := 'settled';
    payment_id := v_own.id;
    return next;
    return;
  end if;
  if v_order.status <> 'pending' then
    raise exception 'Order is %', v_order.status using errcode = 'PT002';
  end if;

  select p.id into v_blocking
  from public.payments p
  where p.order_id = p_order_id::uuid and p.mismatch_reason is null
    and (p.status = 'PAY_PENDING'
         or (p.status = 'VIRTUAL_ACCOUNT_ISSUED'
             and (p.virtual_account_expires_at is null or p.virtual_account_expires_at > clock_timestamp()))
         or (p.status = 'READY' and p.billing_key_id is not null
             and p.billing_key_id <> p_billing_key_id::uuid
             and p.created_at > now() - make_interval(secs => p_in_flight_seconds)))
  order by p.created_at desc
  limit 1;
  if found then
    raise exception 'Payment % for this order is in progress', v_blocking using errcode = 'PT003';
  end if;

  -- the charge needs the key from here on
  if v_key.billing_key is distinct from p_sealed_seen then
    outcome := 'key_changed';
    return next;
    return;
  end if;
  if p_open_refusal is not null then
    raise exception '%', p_open_refusal using errcode = 'PT005';
  end if;
  if p_resealed is not null then
    update public.billing_keys k set billing_key = p_resealed, updated_at = now()
    where k.id = p_billing_key_id::uuid and k.billing_key = p_sealed_seen;
  end if;

  select p.id, p.billing_key_id, p.billing_channel_key into v_reusable
  from public.payments p
  where p.order_id = p_order_id::uuid and p.mismatch_reason is null and p.status = 'READY'
    and (p.billing_key_id = p_billing_key_id::uuid or p.billing_key_id is null)
  order by p.created_at desc
  limit 1;

  outcome := 'reserved';
  order_name := v_order.order_name;
  if v_reusable.id is not null then
    -- the channel the charge must report is recorded beside the window's, for a taken-over attempt
    update public.payments p set billing_channel_key = p_channel_key
    where p.id = v_reusable.id
    returning p.id, p.total_amount, p.tax_free_amount, p.currency
    into payment_id, total_amount, tax_free_amount, currency;
    taken_over_from_window := v_reusable.billing_key_id is null;
    if v_reusable.billing_key_id is null and v_reusable.billing_channel_key is null then
      insert into public.payment_events (payment_id, source, kind, from_status, to_status, detail)
      values (v_reusable.id, 'billing', 'taken_over_by_saved_card', 'READY', 'READY', v_details);
    end if;
  else
    insert into public.payments as p
      (id, order_id, user_id, store_id, billing_channel_key, total_amount, tax_free_amount, currency,
       billing_key_id)
    select p_new_payment_id, o.id, o.user_id, p_store_id, p_channel_key, o.total_amount, o.tax_free_amount,
           o.currency, p_billing_key_id::uuid
    from public.orders o
    where o.id = p_order_id::uuid
    returning p.id, p.total_amount, p.tax_free_amount, p.currency
    into payment_id, total_amount, tax_free_amount, currency;
    taken_over_from_window := false;
    insert into public.payment_events (payment_id, source, kind, to_status, detail)
    values (p_new_payment_id, 'billing', 'created', 'READY', v_details);
  end if;
  return next;
end;
$$;
comment on function private.reserve_billing_attempt(
  uuid, text, text, text, text, text, integer, text, text, text, text
) is 'Saved-card charge: the attempt to charge (reused or new) under the order lock, or why there is none.';
revoke all on function private.reserve_billing_attempt(uuid, text, text, text, text, text, integer, text, text, text, text)
  from public, anon, authenticated, service_role;
