/**
 * A new connection asks the server nothing before its first query: postgres.js's catalogue fetch of every
 * array type (one more round trip on each new connection, and ≈3 MiB of a cold isolate's memory, issue #14)
 * is replaced by a fixed table of the built-in array types (shared/infra/db-types.ts). These tests hold
 * that table to the server: generated arrays go in as parameters and come back as results unchanged, and
 * agree with what PostgreSQL itself makes of them (`to_jsonb`).
 */
import assert from "node:assert/strict";
import { createSql } from "../shared/infra/db.ts";
import { startPgProxy } from "./bench/pg-proxy.ts";
import { seededRandom } from "./sandbox/faults.ts";
import { appDatabaseUrl } from "./support/test-database.ts";

Deno.test("a new connection's first query is the only statement it sends", async () => {
  const proxy = startPgProxy(appDatabaseUrl(), { count: true });
  const sql = createSql(proxy.url, { prepare: true });
  try {
    await sql`select 1 as one`;
    const counts = proxy.counts();
    assert.equal(counts.connections, 1);
    assert.equal(counts.statements, 1, "nothing but the query itself (no fetch of the array types)");
  } finally {
    await sql.end();
    await proxy.close();
  }
});

/** Strings that stress an array literal: quotes, backslashes, braces, commas, blanks, NULL look-alikes. */
function randomText(random: () => number): string {
  const pieces = ['"', "\\", "{", "}", ",", " ", "NULL", "null", "a", "가", "\n", "'", "😀", "\t", ""];
  let text = "";
  const length = Math.floor(random() * 6);
  for (let i = 0; i < length; i++) text += pieces[Math.floor(random() * pieces.length)];
  return text;
}

Deno.test("arrays cross the wire unchanged, as parameters and as results (generated)", async (t) => {
  const seed = Number(Deno.env.get("DB_ARRAYS_SEED") ?? 7);
  const random = seededRandom(seed);
  for (const prepare of [true, false]) {
    await t.step(`prepare: ${prepare}`, async () => {
      const sql = createSql(appDatabaseUrl(), { prepare });
      try {
        for (let i = 0; i < 60; i++) {
          const texts = Array.from(
            { length: Math.floor(random() * 5) },
            () => (random() < 0.15 ? null : randomText(random)),
          );
          const numbers = Array.from(
            { length: Math.floor(random() * 4) },
            () => random() < 0.2 ? null : Math.floor((random() - 0.5) * Number.MAX_SAFE_INTEGER),
          );
          const flags = Array.from({ length: Math.floor(random() * 4) }, () => random() < 0.5);
          const ids = Array.from({ length: Math.floor(random() * 3) }, () => crypto.randomUUID());
          const [row] = await sql<
            {
              texts: (string | null)[];
              texts_json: (string | null)[];
              numbers: (number | null)[];
              ints: (number | null)[];
              flags: boolean[];
              ids: string[];
              empty: string[];
            }[]
          >`
            select ${texts}::text[] as texts, to_jsonb(${texts}::text[]) as texts_json,
                   ${numbers}::int8[] as numbers, ${
            numbers.map((n) => n === null ? null : n % 100_000)
          }::int4[] as ints,
                   array[${sql.unsafe(flags.map(String).join(",") || "null")}]::boolean[] as flags,
                   ${ids}::uuid[] as ids, '{}'::text[] as empty`;
          const context = `DB_ARRAYS_SEED=${seed} #${i}`;
          assert.deepEqual(row!.texts, texts, context);
          assert.deepEqual(row!.texts_json, texts, `${context}: the server read the same elements`);
          assert.deepEqual(row!.numbers, numbers, context);
          assert.deepEqual(row!.ints, numbers.map((n) => n === null ? null : n % 100_000), context);
          assert.deepEqual(row!.flags, flags.length ? flags : [null], context);
          assert.deepEqual(row!.ids, ids, context);
          assert.deepEqual(row!.empty, [], context);
        }
        // two dimensions and a NULL array
        const [nested] = await sql<{ grid: string[][]; nothing: null }[]>`
          select array[array['a,b', '"'], array['{', null]]::text[] as grid, null::text[] as nothing`;
        assert.deepEqual(nested!.grid, [["a,b", '"'], ["{", null]]);
        assert.equal(nested!.nothing, null);
      } finally {
        await sql.end();
      }
    });
  }
});

Deno.test("sql.array() sends an array of its values' type on a new connection too", async () => {
  for (const prepare of [true, false]) {
    const sql = createSql(appDatabaseUrl(), { prepare });
    try {
      const [row] = await sql<{ texts: string[]; numbers: number[]; type: string }[]>`
        select ${sql.array(["a,b", '"', "NULL"])} as texts, ${sql.array([1, 2, 3], 23)} as numbers,
               pg_typeof(${sql.array(["x"])})::text as type`;
      assert.deepEqual(row!.texts, ["a,b", '"', "NULL"], `prepare: ${prepare}`);
      assert.deepEqual(row!.numbers, [1, 2, 3], `prepare: ${prepare}`);
      assert.equal(row!.type, "text[]", `prepare: ${prepare}`);
    } finally {
      await sql.end();
    }
  }
});
