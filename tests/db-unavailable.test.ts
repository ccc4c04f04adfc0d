/**
 * Every way the database is "briefly not there" ends a request with 503 `database_unavailable`, never a
 * 500 (issue #17, observation 2), and the request after it succeeds again. Each case is caused on a real
 * server where we can cause it (its own throwaway cluster, restarted and crashed at will); codes that no
 * test can cause on demand (08xxx from the network, connect timeouts) go through the same HTTP wrapper
 * as thrown errors. Plain statement failures stay 500 `internal`: a retry would fail the same way.
 */
import assert from "node:assert/strict";
import { createSql, isTransientDatabaseError, type Sql } from "../shared/infra/db.ts";
import { defineFunction, json } from "../shared/infra/http.ts";
import { setLogSink } from "../shared/infra/log.ts";
import { type Cluster, startCluster } from "./support/postgres-cluster.ts";
import { postgres } from "../shared/infra/deps.ts";

setLogSink((line) =>
  Deno.env.get("DEBUG_LOG") && Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"))
);

/** max_connections 8 with the default 3 reserved for superusers leaves 5 for the app's role. */
const appSlots = 5;

interface Fixture {
  readonly cluster: Cluster;
  /** Superuser: setup and the faults themselves. */
  readonly admin: Sql;
  /** The function's client, as a non-superuser (superusers may take the reserved slots). */
  readonly app: Sql;
  readonly appUrl: string;
  /** Runs `work` as a request through the real HTTP wrapper; returns status and error code. */
  request(work: (sql: Sql) => Promise<unknown>): Promise<{ status: number; code: string | null }>;
}

async function withFixture(fn: (fixture: Fixture) => Promise<void>): Promise<void> {
  const cluster = await startCluster({ maxConnections: appSlots + 3 });
  const admin = postgres(cluster.adminUrl, { max: 2, onnotice: () => {} }) as unknown as Sql;
  await admin`create role app_user login`;
  await admin`create table rows (id int primary key, n int not null)`;
  await admin`insert into rows values (1, 0), (2, 0)`;
  await admin`grant select, insert, update, delete on rows to app_user`;
  const appUrl = cluster.adminUrl.replace("supabase_admin@", "app_user@");
  const app = createSql(appUrl, { poolMax: 2 });
  const request = async (work: (sql: Sql) => Promise<unknown>) => {
    const fn = defineFunction({
      name: "probe",
      methods: ["POST"],
      auth: "none",
      handle: async () => json({ result: await work(app) }),
    });
    const response = await fn.fetch(new Request("http://127.0.0.1/probe", { method: "POST" }));
    const body = await response.json();
    return { status: response.status, code: body.error?.code ?? null };
  };
  try {
    await fn({ cluster, admin, app, appUrl, request });
  } finally {
    await app.end({ timeout: 1 }).catch(() => {});
    await admin.end({ timeout: 1 }).catch(() => {});
    await cluster.stop();
  }
}

const unavailable = { status: 503, code: "database_unavailable" };
const ok = { status: 200, code: null };

/** The app's backend pids (the connections a request could be using). */
async function appBackends(admin: Sql): Promise<number[]> {
  const rows = await admin<{ pid: number }[]>`
    select pid from pg_stat_activity where application_name = 'portone-payments'`;
  return rows.map((row) => row.pid);
}

async function eventually(what: string, check: () => Promise<boolean>, limitMs = 10_000): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!(await check().catch(() => false))) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A request that runs until the test ends its connection, started once it is visibly running. */
async function runningRequest(fixture: Fixture, query: (sql: Sql) => Promise<unknown>) {
  const before = new Set(await appBackends(fixture.admin));
  const pending = fixture.request(query);
  let pid = 0;
  await eventually("the request's query to be running", async () => {
    const rows = await fixture.admin<{ pid: number }[]>`
      select pid from pg_stat_activity
      where application_name = 'portone-payments' and state = 'active' and query like '%pg_sleep%'`;
    pid = rows.find((row) => !before.has(row.pid))?.pid ?? rows[0]?.pid ?? 0;
    return pid !== 0;
  });
  return { pending, pid };
}

Deno.test("57P01 admin shutdown (pg_terminate_backend) mid-request → 503, then the next request works", async () => {
  await withFixture(async (fixture) => {
    for (const inTransaction of [false, true]) {
      const { pending, pid } = await runningRequest(
        fixture,
        (sql) => inTransaction ? sql.begin((tx) => tx`select pg_sleep(30)`) : sql`select pg_sleep(30)`,
      );
      await fixture.admin`select pg_terminate_backend(${pid})`;
      assert.deepEqual(await pending, unavailable);
      assert.deepEqual(await fixture.request((sql) => sql`select 1`), ok);
    }
  });
});

Deno.test("57P02 crash of another backend (kill -9) mid-request → 503, then the next request works", async () => {
  await withFixture(async (fixture) => {
    const { pending } = await runningRequest(fixture, (sql) => sql.begin((tx) => tx`select pg_sleep(30)`));
    // a second session whose backend we kill: the postmaster then ends every other session with 57P02
    const victim = postgres(fixture.cluster.adminUrl, { max: 1, onnotice: () => {} });
    const [row] = await victim<{ pid: number }[]>`select pg_backend_pid() as pid`;
    Deno.kill(row!.pid, "SIGKILL");
    assert.deepEqual(await pending, unavailable);
    await victim.end({ timeout: 0 }).catch(() => {});
    await eventually("requests to succeed after crash recovery", async () => {
      return (await fixture.request((sql) => sql`select 1`)).status === 200;
    });
  });
});

Deno.test("57P03 the database system is shutting down (smart stop) → 503; after restart requests work", async () => {
  await withFixture(async (fixture) => {
    // the admin session stays open, so a smart shutdown waits for it and refuses every new connection
    await fixture.admin`select 1`;
    await fixture.app.end();
    const app = createSql(fixture.appUrl);
    try {
      await fixture.cluster.stopServer("smart", { wait: false });
      await eventually("the server to refuse new connections", async () => {
        const probe = postgres(fixture.appUrl, { max: 1, onnotice: () => {}, connect_timeout: 2 });
        try {
          await probe`select 1`;
          return false;
        } catch (error) {
          return (error as { code?: string }).code === "57P03";
        } finally {
          await probe.end({ timeout: 0 });
        }
      });
      const fn = defineFunction({
        name: "probe",
        methods: ["POST"],
        auth: "none",
        handle: async () => json(await app`select 1 as one`),
      });
      const response = await fn.fetch(new Request("http://127.0.0.1/probe", { method: "POST" }));
      assert.equal(response.status, 503);
      assert.equal((await response.json()).error.code, "database_unavailable");
      await fixture.cluster.stopServer("fast");
      await fixture.cluster.start();
      const again = await fn.fetch(new Request("http://127.0.0.1/probe", { method: "POST" }));
      assert.equal(again.status, 200);
    } finally {
      await app.end({ timeout: 0 });
    }
  });
});

Deno.test("53300 too many connections → 503; once a slot is free requests work", async () => {
  await withFixture(async (fixture) => {
    // take every slot a non-superuser may have, one connection at a time, until the server says no
    const hogs: Sql[] = [];
    for (let i = 0; i <= appSlots; i++) {
      const hog = postgres(fixture.appUrl, { max: 1, onnotice: () => {} }) as unknown as Sql;
      hogs.push(hog);
      const refused = await hog`select 1`.then(() => null, (error) => error);
      if (refused) {
        assert.equal(refused.code, "53300", String(refused));
        break;
      }
    }
    try {
      assert.deepEqual(await fixture.request((sql) => sql`select 1`), unavailable);
    } finally {
      await Promise.all(hogs.map((hog) => hog.end({ timeout: 0 })));
    }
    await eventually(
      "a free slot",
      async () => (await fixture.request((sql) => sql`select 1`)).status === 200,
    );
  });
});

Deno.test("server stopped (connection refused) and restarted → 503, then the next request works", async () => {
  await withFixture(async (fixture) => {
    assert.deepEqual(await fixture.request((sql) => sql`select 1`), ok);
    await fixture.cluster.stopServer("fast");
    assert.deepEqual(await fixture.request((sql) => sql`select 1`), unavailable);
    await fixture.cluster.start();
    assert.deepEqual(await fixture.request((sql) => sql`select 1`), ok);
  });
});

Deno.test("40P01 deadlock and 40001 serialization failure → 503 (the transaction can run again)", async () => {
  await withFixture(async (fixture) => {
    const lockInOrder = (first: number, second: number) => (sql: Sql) =>
      sql.begin(async (tx) => {
        await tx`update rows set n = n + 1 where id = ${first}`;
        await tx`select pg_sleep(0.3)`;
        await tx`update rows set n = n + 1 where id = ${second}`;
      });
    const results = await Promise.all([
      fixture.request(lockInOrder(1, 2)),
      fixture.request(lockInOrder(2, 1)),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 503], JSON.stringify(results));
    assert.ok(results.some((r) => r.code === "database_unavailable"));

    // repeatable read: a row changed by a transaction that committed after our snapshot cannot be updated
    const serialization = await fixture.request((sql) =>
      sql.begin("isolation level repeatable read", async (tx) => {
        await tx`select n from rows where id = 1`;
        await fixture.admin`update rows set n = n + 10 where id = 1`;
        await tx`update rows set n = n + 1 where id = 1`;
      })
    );
    assert.deepEqual(serialization, unavailable);
  });
});

Deno.test("codes no test can cause on demand map to 503; statement errors stay 500", async () => {
  const transient = [
    Object.assign(new Error("write CONNECT_TIMEOUT 10.0.0.1:5432"), { code: "CONNECT_TIMEOUT" }),
    Object.assign(new Error("write CONNECTION_ENDED 127.0.0.1:5432"), { code: "CONNECTION_ENDED" }),
    Object.assign(new Error("write CONNECTION_DESTROYED 127.0.0.1:5432"), { code: "CONNECTION_DESTROYED" }),
    Object.assign(new Error("This socket has been ended by the other party"), { code: "EPIPE" }),
    new Error("This socket has been ended by the other party"),
    Object.assign(new Error("connection failure"), { code: "08006" }),
    Object.assign(new Error("could not connect"), { code: "08001" }),
    Object.assign(new Error("protocol violation"), { code: "08P01" }),
    Object.assign(new Error("terminating connection because of crash of another server process"), {
      code: "57P02",
    }),
    Object.assign(new Error("the database system is starting up"), { code: "57P03" }),
    Object.assign(new Error("sorry, too many clients already"), { code: "53300" }),
  ];
  const notTransient = [
    Object.assign(new Error("duplicate key value"), { code: "23505" }),
    Object.assign(new Error("relation does not exist"), { code: "42P01" }),
    Object.assign(new Error("invalid input syntax"), { code: "22P02" }),
    new TypeError("Cannot read properties of undefined (reading 'id')"),
  ];
  for (const [errors, expected] of [[transient, 503], [notTransient, 500]] as const) {
    for (const error of errors) {
      const fn = defineFunction({
        name: "probe",
        methods: ["POST"],
        auth: "none",
        handle: () => Promise.reject(error),
      });
      const response = await fn.fetch(new Request("http://127.0.0.1/probe", { method: "POST" }));
      const body = await response.json();
      assert.equal(response.status, expected, `${error.message}: ${JSON.stringify(body)}`);
      assert.equal(isTransientDatabaseError(error), expected === 503, error.message);
      if (expected === 503) assert.equal(body.error.code, "database_unavailable");
    }
  }
});
