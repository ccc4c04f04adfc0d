-- Persona helpers for pgTAP (test-only; applied by the suite runner as superuser before pg_prove).
-- A test creates users, then acts as one of four personas: anon, an authenticated user (owner or
-- other), or service_role, exactly as PostgREST would: `set local role` plus request.jwt.claims.

create extension if not exists pgtap with schema extensions;

create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_supabase_user(identifier text, email text default null, app_metadata jsonb default '{}')
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  user_id uuid := gen_random_uuid();
begin
  insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
  values (
    user_id, 'authenticated', 'authenticated', coalesce(email, identifier || '@test.local'),
    app_metadata, jsonb_build_object('test_identifier', identifier), now(), now()
  );
  return user_id;
end;
$$;

create or replace function tests.get_supabase_uid(identifier text)
returns uuid
language sql
security definer
set search_path = ''
as $$
  select id from auth.users where raw_user_meta_data ->> 'test_identifier' = identifier limit 1
$$;

-- Not a definer: `role` cannot be set inside a security definer function.
create or replace function tests.authenticate_as(identifier text)
returns void
language plpgsql
set search_path = ''
as $$
declare
  user_id uuid := tests.get_supabase_uid(identifier);
begin
  if user_id is null then
    raise exception 'no test user %', identifier;
  end if;
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', jsonb_build_object(
    'sub', user_id, 'role', 'authenticated', 'aud', 'authenticated',
    'email', identifier || '@test.local', 'exp', extract(epoch from now() + interval '1 hour')::bigint
  )::text, true);
end;
$$;

create or replace function tests.authenticate_as_service_role()
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
end;
$$;

create or replace function tests.clear_authentication()
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role": "anon"}', true);
end;
$$;

-- Back to the superuser that runs the test file.
create or replace function tests.reset_role()
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
end;
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;
