/**
 * shared/infra/database.types.ts is generated from the migrations (`deno task types`). Regenerated here the
 * same way, on the suite's database server: a scratch database, the bootstrap, `supabase db push` of
 * supabase/migrations (the suite's own database also holds pgTAP helpers and plpgsql_check, which are not
 * ours). A migration changed without regenerating makes the committed file differ, and this test fail.
 */
import assert from "node:assert/strict";
import { databaseTypesFile, generateDatabaseTypes, withMigratedDatabase } from "./support/database-types.ts";

function firstDifference(a: string, b: string): string {
  const left = a.split("\n");
  const right = b.split("\n");
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    if (left[i] !== right[i]) {
      return `line ${i + 1}: committed ${JSON.stringify(left[i])}, generated ${JSON.stringify(right[i])}`;
    }
  }
  return "no line differs";
}

Deno.test("database types: the committed file is what the migrations generate, byte for byte", async () => {
  const url = Deno.env.get("TEST_ADMIN_DATABASE_URL") ?? Deno.env.get("DATABASE_URL");
  assert.ok(url, "run with `deno task test`, which builds the database from the migrations");
  const generated = await withMigratedDatabase(url, generateDatabaseTypes);
  const committed = await Deno.readTextFile(databaseTypesFile);
  assert.ok(
    committed === generated,
    `shared/infra/database.types.ts is stale; run \`deno task types\` and commit it (${
      firstDifference(committed, generated)
    })`,
  );
});
