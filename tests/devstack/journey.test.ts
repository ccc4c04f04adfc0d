/**
 * The supabase-js journey (journey.ts) against `deno task dev`, twice: with the stack's own throwaway
 * cluster (the default), and with DATABASE_URL pointing at a server.
 */
import assert from "node:assert/strict";
import { startCluster } from "../support/postgres-cluster.ts";
import { createScratchDatabase } from "../support/database.ts";
import { spawnStack } from "./test-support.ts";
import { journey, stopsCleanly } from "./journey.ts";

Deno.test("devstack: supabase-js journey on the stack's own database", async (t) => {
  const stack = await spawnStack();
  try {
    assert.equal(stack.state.database, "cluster");
    // the tests keep the system's PostgreSQL (Debian's); the embedded one has its own test
    assert.equal(stack.state.postgres?.source, "system");
    assert.equal(stack.state.portone, "sandbox");
    // Alone on this shared 2-core machine the stack is ready in ~15 s (the CLI's `db push` is most of it);
    // in the full suite it starts next to other stacks and `db push`es (embedded PostgreSQL, README,
    // database types): 27-31 s measured there. Below spawnStack's 45 s limit, with room for that.
    assert.ok(stack.state.readyMs < 40_000, `ready in ${stack.state.readyMs} ms`);
    await journey(t, stack);
    await stopsCleanly(t, stack, Number(new URL(stack.state.databaseUrl).port));
  } finally {
    await stack.stop();
  }
});

Deno.test("devstack: supabase-js journey with DATABASE_URL", async (t) => {
  // the suite's server when there is one (a scratch database keeps runs apart), else our own cluster
  const suiteServer = Deno.env.get("TEST_ADMIN_DATABASE_URL");
  const cluster = suiteServer ? null : await startCluster();
  const scratch = await createScratchDatabase(suiteServer ?? cluster!.adminUrl);
  try {
    const stack = await spawnStack({ env: { DATABASE_URL: scratch.url } });
    try {
      assert.equal(stack.state.database, "DATABASE_URL");
      assert.equal(stack.state.databaseUrl, scratch.url);
      await journey(t, stack);
      await stopsCleanly(t, stack, null);
    } finally {
      await stack.stop();
    }
  } finally {
    await scratch.drop();
    await cluster?.stop();
  }
});
