/**
 * Schedules as code: after `supabase db push` (done by the suite runner on a cluster that preloads pg_cron)
 * the retention jobs exist in cron.job, pg_cron runs them, and they remove exactly the expired rows. The
 * reconcile job needs pg_net and Vault, which Debian does not package: its absence is the documented no-op.
 * With DATABASE_URL the suite runs in a scratch database, which cannot hold pg_cron (it lives in
 * cron.database_name only): there the migration's no-op without pg_cron is proven instead.
 */
import assert from "node:assert/strict";
import { postgres } from "../shared/infra/deps.ts";
import { adminSql, appDatabaseUrl } from "./support/test-database.ts";

const ownCluster = Deno.env.get("TEST_DATABASE_MODE") !== "DATABASE_URL";
const pruneIdempotencyKeys = "select private.prune_idempotency_keys()";
const pruneWebhookLogs = "select private.prune_webhook_logs()";

Deno.test("schedules: pg_cron jobs after db push; the prune jobs remove expired rows only", async (t) => {
  const admin = adminSql();
  // the jobs run as their owner, the migration role: run their commands as that role too
  const app = postgres(appDatabaseUrl(), { max: 1, onnotice: () => {} });
  try {
    const withCron = (await admin`select 1 from pg_extension where extname = 'pg_cron'`).length === 1;
    if (ownCluster) assert.ok(withCron, "the suite's cluster preloads pg_cron: install postgresql-15-cron");
    const jobs = withCron
      ? await admin<{ jobname: string; schedule: string; command: string; username: string }[]>`
          select jobname, schedule, command, username from cron.job where jobname like 'payments-%'
          order by jobname`
      : [];
    /** What the scheduled job runs (without pg_cron: what it would run). */
    const commandOf = (jobname: string, unscheduled: string) =>
      withCron ? jobs.find((j) => j.jobname === jobname)!.command : unscheduled;

    if (withCron) {
      await t.step("the retention jobs are scheduled; reconcile is skipped without pg_net", async () => {
        assert.deepEqual(jobs.map((j) => [j.jobname, j.schedule, j.command.trim()]), [
          ["payments-prune-idempotency-keys", "41 * * * *", pruneIdempotencyKeys],
          ["payments-prune-webhook-logs", "17 3 * * *", pruneWebhookLogs],
        ]);
        assert.deepEqual([...new Set(jobs.map((j) => j.username))], ["postgres"]);
        const pgNet = await admin`select 1 from pg_extension where extname = 'pg_net'`;
        assert.equal(pgNet.length, 0, "this test proves the no-op branch: pg_net must be absent here");
      });

      await t.step("scheduling again is idempotent", async () => {
        const [scheduled] = await app<{ done: string[] }[]>`select private.schedule_operations() as done`;
        assert.deepEqual(scheduled?.done, ["payments-prune-webhook-logs", "payments-prune-idempotency-keys"]);
        const [count] = await admin<{ n: number }[]>`
          select count(*)::int as n from cron.job where jobname like 'payments-%'`;
        assert.equal(count?.n, 2);
      });
    } else {
      await t.step("without pg_cron the migration scheduled nothing (a notice, not an error)", async () => {
        const [scheduled] = await app<{ done: string[] }[]>`select private.schedule_operations() as done`;
        assert.deepEqual(scheduled?.done, []);
        const [cron] = await admin<
          { schema: string | null }[]
        >`select to_regnamespace('cron')::text as schema`;
        assert.equal(cron?.schema, null);
      });
    }

    await t.step("the reconcile call reads Vault and fails loudly when it cannot", async () => {
      await assert.rejects(
        app`select private.vault_secret('payments_reconcile_url')`,
        /Vault is not enabled here \(needed for secret payments_reconcile_url\)/,
      );
    });

    await t.step("running the idempotency job removes expired replies, keeps live ones", async () => {
      const userId = crypto.randomUUID();
      await admin`
        insert into auth.users (id, aud, role, email, created_at, updated_at)
        values (${userId}, 'authenticated', 'authenticated', ${`${userId}@test.local`}, now(), now())`;
      const hash = "0".repeat(64);
      const rows = await admin<{ key: string }[]>`
        insert into public.idempotency_keys
          (user_id, route, key, request_hash, status, locked_until, response_status, response_body, created_at,
           completed_at, expires_at)
        values
          (${userId}, 'cancel', 'expired-completed', ${hash}, 'completed', null, 200, '{}', now() - interval '2 days',
           now() - interval '2 days', now() - interval '1 day'),
          (${userId}, 'cancel', 'expired-dead-claim', ${hash}, 'in_progress', now() - interval '1 day', null, null,
           now() - interval '2 days', null, now() - interval '1 day'),
          (${userId}, 'cancel', 'expired-live-claim', ${hash}, 'in_progress', now() + interval '1 minute', null, null,
           now() - interval '2 days', null, now() - interval '1 second'),
          (${userId}, 'cancel', 'fresh', ${hash}, 'completed', null, 200, '{}', now(), now(), now() + interval '1 day')
        returning key`;
      assert.equal(rows.length, 4);
      await app.unsafe(commandOf("payments-prune-idempotency-keys", pruneIdempotencyKeys));
      const left = await admin<{ key: string }[]>`
        select key from public.idempotency_keys where user_id = ${userId} order by key`;
      assert.deepEqual(left.map((r) => r.key), ["expired-live-claim", "fresh"]);
    });

    await t.step("running the webhook-log job removes old finished deliveries only", async () => {
      const prefix = `msg_prune_${crypto.randomUUID()}`;
      const hash = "0".repeat(64);
      await admin`
        insert into public.webhook_logs (webhook_id, payload, payload_sha256, status, received_at)
        values (${`${prefix}-old-processed`}, '{}', ${hash}, 'processed', now() - interval '40 days'),
               (${`${prefix}-old-ignored`}, '{}', ${hash}, 'ignored', now() - interval '40 days'),
               (${`${prefix}-old-failed`}, '{}', ${hash}, 'failed', now() - interval '40 days'),
               (${`${prefix}-recent`}, '{}', ${hash}, 'processed', now() - interval '1 day')`;
      await app.unsafe(commandOf("payments-prune-webhook-logs", pruneWebhookLogs));
      const left = await admin<{ webhook_id: string }[]>`
        select webhook_id from public.webhook_logs where webhook_id like ${`${prefix}%`} order by webhook_id`;
      assert.deepEqual(left.map((r) => r.webhook_id), [`${prefix}-old-failed`, `${prefix}-recent`]);
    });

    if (withCron) {
      await t.step(
        "pg_cron itself runs the scheduled prune job (moved to every minute for the test)",
        async () => {
          const job = jobs.find((j) => j.jobname === "payments-prune-webhook-logs")!;
          const [row] = await admin<
            { jobid: number }[]
          >`select jobid from cron.job where jobname = ${job.jobname}`;
          assert.ok(row);
          const jobid = row.jobid;
          const webhookId = `msg_cron_${crypto.randomUUID()}`;
          await admin`
          insert into public.webhook_logs (webhook_id, payload, payload_sha256, status, received_at)
          values (${webhookId}, '{}', ${"0".repeat(64)}, 'processed', now() - interval '40 days')`;
          const since = new Date();
          await admin`select cron.alter_job(${jobid}, schedule => '* * * * *')`;
          try {
            // pg_cron 1.4 schedules by the minute: the run starts within 60 s
            const deadline = Date.now() + 90_000;
            let runs: { status: string; return_message: string }[] = [];
            while (Date.now() < deadline) {
              runs = await admin<{ status: string; return_message: string }[]>`
              select status, return_message from cron.job_run_details
              where jobid = ${jobid} and start_time >= ${since} and status in ('succeeded', 'failed')`;
              if (runs.length > 0) break;
              await new Promise((resolve) => setTimeout(resolve, 1_000));
            }
            assert.deepEqual(runs.map((r) => r.status), ["succeeded"], JSON.stringify(runs));
            const left = await admin`select 1 from public.webhook_logs where webhook_id = ${webhookId}`;
            assert.equal(left.length, 0);
          } finally {
            await admin`select cron.alter_job(${jobid}, schedule => ${job.schedule})`;
          }
        },
      );
    }
  } finally {
    await app.end();
    await admin.end();
  }
});
