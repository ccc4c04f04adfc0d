/**
 * Connections for Deno tests. The suite runner (`deno task test`) prepares the database and passes
 * DATABASE_URL (the app's `postgres` role, as functions use) and TEST_ADMIN_DATABASE_URL (superuser).
 */
import { postgres, type Sql } from "../../shared/infra/deps.ts";

function required(name: string): string {
  const value = Deno.env.get(name);
  if (!value) {
    throw new Error(`${name} is not set: run the tests with \`deno task test\`, which starts the database`);
  }
  return value;
}

export function appDatabaseUrl(): string {
  return required("DATABASE_URL");
}

/** A superuser connection for test setup and assertions; close it with `await sql.end()`. */
export function adminSql(): Sql {
  return postgres(Deno.env.get("TEST_ADMIN_DATABASE_URL") ?? appDatabaseUrl(), {
    max: 4,
    onnotice: () => {},
  });
}
