-- Purpose: cancel's reservation (shared/payments/cancel.ts, step 1) as one function call: every check and
-- write of the reservation runs under the payment's row lock in one statement, so a cancel pays one round
-- trip to the database for it instead of eight (begin, lock, two lookups, three writes, commit). The rules
-- and answers are the ones the TypeScript transaction had; the answers leave as stable SQLSTATEs that
-- cancel.ts maps to the same error codes, messages and details:
--   PC001 not_found · PC002 forbidden · PC003 idempotency_key_reused · PC004 cancel_in_progress ·
--   PC005 payment_not_cancellable · PC006 cancel_amount_exceeds_cancellable ·
--   PC007 refund_account_required · PC008 invalid_refund_account
-- (DETAIL carries the error's details as a JSON object when it has any).
-- Touches: functions private.require_refund_account, private.reserve_cancellation.

-- A virtual-account refund goes to a bank account: the request must carry one, with the holder's phone
-- number where the PG needs it.
create or replace function private.require_refund_account(
  pg_provider text,
  masked_refund_account jsonb,
  refund_account_has_phone boolean,
  pg_providers_requiring_phone text[]
)
returns void
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  if masked_refund_account is null then
    raise exception 'A virtual-account payment is refunded to a bank account: send refundAccount'
      using errcode = 'PC007';
  end if;
  if pg_provider = any (pg_providers_requiring_phone) and not refund_account_has_phone then
    raise exception 'This PG needs refundAccount.holderPhoneNumber' using errcode = 'PC008',
      detail = jsonb_build_object('field', 'refundAccount.holderPhoneNumber')::text;
  end if;
end;
$$;
comment on function private.require_refund_account(text, jsonb, boolean, text[]) is
  'Raises refund_account_required (PC007) or invalid_refund_account (PC008) for a virtual-account refund.';
revoke all on function private.require_refund_account(text, jsonb, boolean, text[])
  from public, anon, authenticated, service_role;

-- The refund account itself never reaches the database: the caller passes only its masked form (stored for
-- a virtual-account payment) and whether it carries the holder's phone number, which the PGs listed in
-- pg_providers_requiring_phone need.
--
-- Returns the cancellation to send (a new REQUESTED row, or the existing row of this Idempotency-Key: a
-- retry) with the payment's method and its state as of the reservation. A FAILED row is returned too: the
-- caller answers its refusal again from failure_reason (PortOne's refusal type, mapped in TypeScript).
create or replace function private.reserve_cancellation(
  target_payment_id text,
  caller_id uuid,
  caller_is_admin boolean,
  customers_may_cancel boolean,
  portone_key text,
  -- null: all that is left
  requested_amount bigint,
  -- null: none for a new request, and any for a retry
  requested_tax_free_amount bigint,
  cancel_reason text,
  masked_refund_account jsonb,
  refund_account_has_phone boolean,
  pg_providers_requiring_phone text[]
)
returns table (
  id uuid,
  payment_id text,
  status text,
  amount bigint,
  tax_free_amount bigint,
  reason text,
  requester text,
  idempotency_key text,
  current_cancellable_amount bigint,
  portone_cancellation_id text,
  failure_reason text,
  method_type text,
  payment_status text,
  cancelled_amount bigint,
  cancellable_amount bigint
)
language plpgsql
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
  payment record;
  existing record;
  cancellable bigint;
  cancel_amount bigint;
  tax_free_left bigint;
  tax_free bigint;
  is_virtual_account boolean;
  created_id uuid;
  created_requester text;
begin
  select p.id, p.user_id, p.status, p.paid_amount, p.cancelled_amount, p.tax_free_amount,
         p.cancelled_tax_free_amount, p.method_type, p.pg_provider
  into payment
  from public.payments p
  where p.id = target_payment_id
  for update;
  if not found or (payment.user_id is distinct from caller_id and not caller_is_admin) then
    raise exception 'Payment not found' using errcode = 'PC001';
  end if;
  if not caller_is_admin and not customers_may_cancel then
    raise exception 'Cancelling is not open to customers; ask the merchant' using errcode = 'PC002';
  end if;
  is_virtual_account := payment.method_type is not distinct from 'VIRTUAL_ACCOUNT';

  select c.id, c.payment_id, c.status, c.amount, c.tax_free_amount, c.portone_cancellation_id
  into existing
  from public.payment_cancellations c
  where c.idempotency_key = portone_key;
  if found then
    if existing.payment_id <> target_payment_id
      or (requested_amount is not null and requested_amount <> existing.amount)
      or (requested_tax_free_amount is not null and requested_tax_free_amount <> existing.tax_free_amount)
    then
      raise exception 'This Idempotency-Key was used for a different cancellation' using errcode = 'PC003';
    end if;
    -- only a request PortOne never acknowledged is sent again, and a virtual account's needs its account again
    if existing.status = 'REQUESTED' and existing.portone_cancellation_id is null and is_virtual_account then
      perform private.require_refund_account(payment.pg_provider, masked_refund_account,
        refund_account_has_phone, pg_providers_requiring_phone);
    end if;
    return query
      select c.id, c.payment_id, c.status, c.amount, c.tax_free_amount, c.reason, c.requester, c.idempotency_key,
             c.current_cancellable_amount, c.portone_cancellation_id, c.failure_reason, payment.method_type,
             payment.status, payment.cancelled_amount, payment.paid_amount - payment.cancelled_amount
      from public.payment_cancellations c
      where c.id = existing.id;
    return;
  end if;

  -- one cancellation per payment in flight: it keeps currentCancellableAmount exact
  if exists (
    select 1 from public.payment_cancellations c where c.payment_id = target_payment_id and c.status = 'REQUESTED'
  ) then
    raise exception 'Another cancellation of this payment is in progress; retry shortly' using errcode = 'PC004';
  end if;
  if payment.status not in ('PAID', 'PARTIAL_CANCELLED') then
    raise exception 'A % payment cannot be cancelled', payment.status using errcode = 'PC005';
  end if;
  cancellable := payment.paid_amount - payment.cancelled_amount;
  cancel_amount := coalesce(requested_amount, cancellable);
  if cancel_amount <= 0 or cancel_amount > cancellable then
    raise exception 'At most % can be cancelled', cancellable using errcode = 'PC006',
      detail = jsonb_build_object('cancellableAmount', cancellable)::text;
  end if;
  tax_free_left := greatest(payment.tax_free_amount - payment.cancelled_tax_free_amount, 0);
  tax_free := coalesce(requested_tax_free_amount, 0);
  if tax_free > tax_free_left or tax_free > cancel_amount then
    raise exception 'At most % tax-free can be cancelled', least(tax_free_left, cancel_amount)
      using errcode = 'PC006',
      detail = jsonb_build_object('field', 'taxFreeAmount', 'cancellableTaxFreeAmount', tax_free_left)::text;
  end if;
  if is_virtual_account then
    perform private.require_refund_account(payment.pg_provider, masked_refund_account,
      refund_account_has_phone, pg_providers_requiring_phone);
  end if;

  insert into public.payment_cancellations as c
    (payment_id, status, amount, tax_free_amount, reason, requester, requested_by, idempotency_key,
     current_cancellable_amount, refund_account_masked)
  values
    (target_payment_id, 'REQUESTED', cancel_amount, tax_free, cancel_reason,
     case when caller_is_admin then 'ADMIN' else 'CUSTOMER' end, caller_id, portone_key, cancellable,
     case when is_virtual_account then masked_refund_account end)
  returning c.id, c.requester into created_id, created_requester;
  update public.payments p set cancel_reserved_amount = p.cancel_reserved_amount + cancel_amount
  where p.id = target_payment_id;
  insert into public.payment_events (payment_id, source, kind, from_status, to_status, detail)
  values (target_payment_id, 'cancel', 'cancel_requested', payment.status, payment.status,
          jsonb_build_object('cancellationId', created_id, 'amount', cancel_amount, 'taxFreeAmount', tax_free,
                             'requester', created_requester));

  return query
    select c.id, c.payment_id, c.status, c.amount, c.tax_free_amount, c.reason, c.requester, c.idempotency_key,
           c.current_cancellable_amount, c.portone_cancellation_id, c.failure_reason, payment.method_type,
           payment.status, payment.cancelled_amount, cancellable
    from public.payment_cancellations c
    where c.id = created_id;
end;
$$;
comment on function private.reserve_cancellation(
  text, uuid, boolean, boolean, text, bigint, bigint, text, jsonb, boolean, text[]
) is
  'Cancel''s reservation under the payment''s row lock: the checks, then the REQUESTED cancellation, its reserved amount and its event; or the existing cancellation of the key.';
revoke all on function private.reserve_cancellation(
  text, uuid, boolean, boolean, text, bigint, bigint, text, jsonb, boolean, text[]
) from public, anon, authenticated, service_role;
