/**
 * `deno task types`: regenerates every generated file from its source, in one command (after a merge that
 * brought new migrations or contract changes, run it and commit the result):
 *
 * - shared/infra/database.types.ts from supabase/migrations: a throwaway cluster (or a scratch database on
 *   DATABASE_URL's server), the platform bootstrap, `supabase db push`, then postgres-meta's generator.
 * - shared/contract/functions.openapi.json from the operations table in shared/contract/.
 *
 * The tests regenerate each file and fail when the committed one differs.
 */
import {
  databaseTypesFile,
  generateDatabaseTypes,
  generateOpenApiText,
  openApiFile,
  withMigratedDatabase,
} from "./database-types.ts";

const encoder = new TextEncoder();
const say = (line: string): void => void Deno.stdout.writeSync(encoder.encode(`${line}\n`));

async function writeIfChanged(file: string, text: string): Promise<void> {
  const before = await Deno.readTextFile(file).catch(() => null);
  const name = file.slice(new URL("../../", import.meta.url).pathname.length);
  if (before === text) return say(`${name}: up to date`);
  await Deno.writeTextFile(file, text);
  say(`${name}: written`);
}

const started = performance.now();
await writeIfChanged(openApiFile, await generateOpenApiText());
await withMigratedDatabase(Deno.env.get("DATABASE_URL"), async (url) => {
  await writeIfChanged(databaseTypesFile, await generateDatabaseTypes(url));
});
say(`done in ${((performance.now() - started) / 1000).toFixed(1)}s`);
