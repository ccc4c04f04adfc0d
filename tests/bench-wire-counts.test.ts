/**
 * The bench's counting proxy counts what happens on the wire: a statement with parameters costs two round
 * trips unprepared and one prepared, pipelined statements share a round trip, and autocommit statements
 * count as transactions of their own.
 */
import assert from "node:assert/strict";
import { postgres } from "../shared/infra/deps.ts";
import { startPgProxy } from "./bench/pg-proxy.ts";
import { appDatabaseUrl } from "./support/test-database.ts";

Deno.test("the counting proxy counts statements, transactions, Parse messages and round trips", async () => {
  const proxy = startPgProxy(appDatabaseUrl(), { count: true });
  const unprepared = postgres(proxy.url, { max: 1, prepare: false, onnotice: () => {} });
  const prepared = postgres(proxy.url, { max: 1, prepare: true, onnotice: () => {} });
  try {
    await unprepared`select 1`;
    await prepared`select ${1}::int`;

    proxy.reset();
    await unprepared`select ${2}::int as two`;
    assert.deepEqual(
      [
        proxy.counts().statements,
        proxy.counts().parses,
        proxy.counts().roundTrips,
        proxy.counts().transactions,
      ],
      [1, 1, 2, 1],
      "unprepared: Parse/Describe/Flush, then Bind/Execute/Sync",
    );

    proxy.reset();
    await prepared`select ${1}::int`;
    assert.deepEqual([proxy.counts().parses, proxy.counts().roundTrips], [0, 1], "prepared and cached");

    proxy.reset();
    await prepared.begin(async (tx) => {
      await tx`select ${3}::int`;
      await tx`select ${4}::int`;
    });
    const sequential = proxy.counts();
    assert.equal(sequential.transactions, 1);
    assert.equal(sequential.statements, 4, "begin, two selects, commit");

    proxy.reset();
    await prepared.begin(async (tx) => {
      await Promise.all([tx`select ${3}::int`, tx`select ${4}::int`]);
    });
    const pipelined = proxy.counts();
    assert.equal(pipelined.statements, 4);
    assert.ok(
      pipelined.roundTrips < sequential.roundTrips,
      `${pipelined.roundTrips} < ${sequential.roundTrips}`,
    );
    assert.equal(proxy.counts().connections, 0, "no new connection");

    proxy.dropConnections();
    await new Promise((resolve) => setTimeout(resolve, 20));
    proxy.reset();
    await prepared`select ${5}::int`;
    const reconnected = proxy.counts();
    assert.equal(reconnected.connections, 1, "a new connection after the drop");
    assert.equal(reconnected.parses >= 1, true, "statements are prepared again on the new connection");
    assert.ok(
      reconnected.roundTrips >= 3,
      `startup, type lookup and the statement: ${reconnected.roundTrips}`,
    );
  } finally {
    await unprepared.end();
    await prepared.end();
    await proxy.close();
  }
});
