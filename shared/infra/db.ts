/**
 * The Postgres client. Functions talk to Postgres directly (not through PostgREST) so that every money
 * state change is one real transaction with row locks. One client per isolate with a small pool; prepared
 * statements where the connection keeps them (DB_PREPARE in config.ts: Supabase's transaction pooler does not).
 */
import { postgres, type Sql } from "./deps.ts";
import { createReplaceableSql } from "./db-client.ts";
import { arrayTypeOf, wireTypes } from "./db-types.ts";

export { isConnectionLostError, isTransientDatabaseError } from "./db-errors.ts";

export type { Sql, TransactionSql } from "./deps.ts";

/**
 * The client every function uses. Behind it is a postgres.js pool that is swapped for a fresh one when a
 * connection is lost (see db-client.ts): the database going away costs the requests that were using it a
 * 503, and the next request runs on a new connection.
 */
export function createSql(url: string, options: { poolMax?: number; prepare?: boolean } = {}): Sql {
  return createReplaceableSql(() => {
    const pool = postgres(url, {
      prepare: options.prepare ?? false,
      max: options.poolMax ?? 1,
      // A hosted worker lives 150–400 s; closing its connection sooner made the first request after a quiet
      // spell pay a reconnect. TCP keepalives (postgres.js default, 60 s) keep idle NAT mappings open.
      idle_timeout: 400,
      connect_timeout: 10,
      onnotice: () => {},
      // int8 as safe integers, and the built-in array types from a table instead of a pg_type query on
      // every new connection (db-types.ts)
      types: wireTypes,
      fetch_types: false,
      connection: { application_name: "portone-payments" },
    });
    Object.assign(
      (pool.options as unknown as { shared: { typeArrayMap: object } }).shared.typeArrayMap,
      arrayTypeOf,
    );
    return pool as unknown as Sql;
  });
}
