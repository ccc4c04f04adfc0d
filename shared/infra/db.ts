/**
 * The Postgres client. Functions talk to Postgres directly (not through PostgREST) so that every money
 * state change is one real transaction with row locks. One client per isolate with a small pool;
 * `prepare: false` because Supabase's transaction pooler cannot keep prepared statements.
 */
import { postgres, type Sql } from "./deps.ts";
import { createReplaceableSql } from "./db-client.ts";

export { isConnectionLostError, isTransientDatabaseError } from "./db-errors.ts";

export type { Sql, TransactionSql } from "./deps.ts";

/** int8 (bigint) columns hold money in minor units; they arrive as exact JS integers or fail loudly. */
const int8AsSafeInteger = {
  to: 20,
  from: [20],
  serialize: (value: number | bigint | string) => String(value),
  parse: (text: string): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(`int8 value ${text} is outside the safe integer range`);
    }
    return value;
  },
};

/**
 * The client every function uses. Behind it is a postgres.js pool that is swapped for a fresh one when a
 * connection is lost (see db-client.ts): the database going away costs the requests that were using it a
 * 503, and the next request runs on a new connection.
 */
export function createSql(url: string, options: { poolMax?: number; prepare?: boolean } = {}): Sql {
  return createReplaceableSql(() =>
    postgres(url, {
      prepare: options.prepare ?? false,
      max: options.poolMax ?? 1,
      // A hosted worker lives 150–400 s; closing its connection sooner made the first request after a quiet
      // spell pay a reconnect. TCP keepalives (postgres.js default, 60 s) keep idle NAT mappings open.
      idle_timeout: 400,
      connect_timeout: 10,
      onnotice: () => {},
      types: { int8: int8AsSafeInteger },
      connection: { application_name: "portone-payments" },
    }) as unknown as Sql
  );
}
