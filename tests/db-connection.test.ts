/**
 * How functions connect: prepared statements where the connection keeps them (DB_PREPARE), and a connection
 * that outlives an idle spell of a live worker.
 */
import assert from "node:assert/strict";
import { ConfigError, readConfig } from "../shared/infra/config.ts";
import { createSql, isTransientDatabaseError } from "../shared/infra/db.ts";
import { appDatabaseUrl } from "./support/test-database.ts";

const base = {
  PORTONE_API_SECRET: "secret",
  PORTONE_STORE_ID: "store-1",
  PORTONE_CHANNEL_KEY: "channel-default",
  SUPABASE_URL: "https://project.supabase.co",
};
const direct = "postgresql://postgres:pw@db.abcdefghijklmnop.supabase.co:5432/postgres";
const transactionPooler =
  "postgresql://postgres.abcdefghijklmnop:pw@aws-0-ap-northeast-2.pooler.supabase.com:6543/postgres";
const sessionPooler =
  "postgresql://postgres.abcdefghijklmnop:pw@aws-0-ap-northeast-2.pooler.supabase.com:5432/postgres";

Deno.test("DB_PREPARE: on for the platform's direct SUPABASE_DB_URL, off for a DATABASE_URL override", () => {
  assert.equal(readConfig({ ...base, SUPABASE_DB_URL: direct }).database.prepare, true);
  // DATABASE_URL exists to point functions at a pooler; whether that pooler keeps prepared statements is
  // unknown, so it takes an explicit DB_PREPARE=true
  assert.equal(
    readConfig({ ...base, SUPABASE_DB_URL: direct, DATABASE_URL: sessionPooler }).database.prepare,
    false,
  );
  assert.equal(
    readConfig({ ...base, DATABASE_URL: sessionPooler, DB_PREPARE: "true" }).database.prepare,
    true,
  );
  assert.equal(readConfig({ ...base, SUPABASE_DB_URL: direct, DB_PREPARE: "false" }).database.prepare, false);
  assert.equal(readConfig({ ...base, SUPABASE_DB_URL: transactionPooler }).database.prepare, false);
});

Deno.test("DB_PREPARE=true with Supavisor's transaction pooler (port 6543) stops the function at startup", () => {
  for (const env of [{ DATABASE_URL: transactionPooler }, { SUPABASE_DB_URL: transactionPooler }]) {
    assert.throws(() => readConfig({ ...base, ...env, DB_PREPARE: "true" }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.variables, ["DB_PREPARE"]);
      assert.match(error.message, /transaction pooler/);
      return true;
    });
  }
  assert.throws(() => readConfig({ ...base, SUPABASE_DB_URL: direct, DB_PREPARE: "yes" }), /DB_PREPARE/);
});

Deno.test("createSql() prepares statements on the server only when asked to", async () => {
  for (const prepare of [true, false]) {
    const sql = createSql(appDatabaseUrl(), { prepare });
    try {
      await sql`select ${1}::int as one`;
      const [row] = await sql<{ count: number }[]>`
        select count(*)::int as count from pg_prepared_statements where not from_sql`;
      assert.equal(row!.count > 0, prepare, `prepare: ${prepare}`);
    } finally {
      await sql.end();
    }
  }
});

Deno.test("the connection outlives a hosted worker's idle spells (workers live 150–400 s)", async () => {
  const sql = createSql(appDatabaseUrl());
  try {
    const idleTimeout = (sql as unknown as { options: { idle_timeout: number | null } }).options.idle_timeout;
    assert.ok(idleTimeout === null || idleTimeout === 0 || idleTimeout >= 400, `idle_timeout ${idleTimeout}`);
  } finally {
    await sql.end();
  }
});

Deno.test("a prepared statement whose table changed under it is a retryable 503, and the retry succeeds", async () => {
  // A migration that adds a column invalidates every warm connection's cached `select *`; inside a
  // transaction postgres.js cannot re-prepare, so the request fails once. That is a passing condition of
  // the database (a deploy), not a bug in the request: 503, and the client's retry runs on a fresh plan.
  const table = `public.plan_cache_probe_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const sql = createSql(appDatabaseUrl(), { prepare: true });
  try {
    await sql.unsafe(`create table ${table} (id int primary key, a int)`);
    await sql.unsafe(`insert into ${table} values (1, 1)`);
    const read = () => sql.begin((tx) => tx`select * from ${tx(table.split(".")[1]!)} where id = ${1}`);
    assert.equal((await read()).length, 1);
    await sql.unsafe(`alter table ${table} add column b int`);
    const failure = await read().then(() => null, (error: unknown) => error);
    if (failure !== null) {
      assert.equal(isTransientDatabaseError(failure), true, `not retryable: ${String(failure)}`);
    }
    const [row] = await read();
    assert.deepEqual(Object.keys(row!).sort(), ["a", "b", "id"]);
  } finally {
    await sql.unsafe(`drop table if exists ${table}`);
    await sql.end();
  }
});
