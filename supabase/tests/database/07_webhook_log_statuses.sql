-- Proves the webhook inbox's closed status set: the two statuses for verified deliveries we cannot
-- process (`malformed`, `unsupported_format`) are accepted next to the original five, anything else is
-- refused by webhook_logs_status_check; a hashed webhook-id (`sha256:` + 64 hex) fits the id column; and
-- private.prune_webhook_logs deletes old finished rows of every finished status, never unfinished ones.
begin;
set local search_path = public, extensions, tests;

select plan(6);

select lives_ok(
  $$ insert into public.webhook_logs (webhook_id, payload, payload_sha256, status, last_error, received_at)
     values ('ws-malformed', 'null', repeat('a', 64), 'malformed', 'not_json', now() - interval '40 days'),
            ('sha256:' || repeat('b', 64), 'null', repeat('b', 64), 'malformed', 'webhook_id_too_long',
             now() - interval '40 days'),
            ('ws-v1', '{"imp_uid": "imp_1"}', repeat('c', 64), 'unsupported_format', 'portone_v1',
             now() - interval '40 days') $$,
  'malformed and unsupported_format rows are accepted, a hashed id fits');

select lives_ok(
  $$ insert into public.webhook_logs (webhook_id, payload, payload_sha256, status, received_at)
     values ('ws-processed', '{}', repeat('d', 64), 'processed', now() - interval '40 days'),
            ('ws-failed', '{}', repeat('e', 64), 'failed', now() - interval '40 days'),
            ('ws-recent', 'null', repeat('f', 64), 'malformed', now()) $$,
  'the original statuses are still accepted');

select throws_ok(
  $$ insert into public.webhook_logs (webhook_id, payload, payload_sha256, status)
     values ('ws-bogus', '{}', repeat('a', 64), 'unparseable') $$,
  '23514', null, 'a status outside the closed set is refused');

select throws_ok(
  $$ update public.webhook_logs set status = 'unknown' where webhook_id = 'ws-malformed' $$,
  '23514', null, 'an update to a status outside the set is refused');

select is(private.prune_webhook_logs(), 4::bigint,
  'prune deletes old processed, malformed and unsupported_format rows');

select results_eq(
  $$ select webhook_id from public.webhook_logs where webhook_id like 'ws-%' order by webhook_id $$,
  $$ values ('ws-failed'), ('ws-recent') $$,
  'an old failed row (still to be processed) and a recent malformed row are kept');

select * from finish();
rollback;
