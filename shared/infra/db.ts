/**
 * The Postgres client. Functions talk to Postgres directly (not through PostgREST) so that every money
 * state change is one real transaction with row locks. One client per isolate with a small pool;
 * `prepare: false` because Supabase's transaction pooler cannot keep prepared statements.
 */
import { postgres, type Sql } from "./deps.ts";

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

export function createSql(url: string, options: { poolMax?: number; prepare?: boolean } = {}): Sql {
  return postgres(url, {
    prepare: options.prepare ?? false,
    max: options.poolMax ?? 1,
    // A hosted worker lives 150–400 s; closing its connection sooner made the first request after a quiet
    // spell pay a reconnect. TCP keepalives (postgres.js default, 60 s) keep idle NAT mappings open.
    idle_timeout: 400,
    connect_timeout: 10,
    onnotice: () => {},
    types: { int8: int8AsSafeInteger },
    connection: { application_name: "portone-payments" },
  }) as unknown as Sql;
}

/** True for errors that mean "the database is unreachable or overloaded right now", worth a retry. */
export function isTransientDatabaseError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  return code === "CONNECT_TIMEOUT" || code === "CONNECTION_CLOSED" || code === "CONNECTION_ENDED" ||
    code === "CONNECTION_DESTROYED" || code === "ECONNREFUSED" || code === "ECONNRESET" ||
    code === "40001" || code === "40P01" || code === "53300" || code === "57P01" || code.startsWith("08");
}
