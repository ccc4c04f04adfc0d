/**
 * Handy names for the generated database types (database.types.ts, from the migrations): `Row<"payments">`
 * is a row of `public.payments` as PostgREST (supabase-js) returns it. Through postgres.js (db.ts) int8
 * columns arrive as numbers too, but timestamptz columns arrive as `Date`, not `string`: pick the columns
 * you read, and use `SqlRow` when timestamps are among them.
 */
import type { Database } from "./database.types.ts";

export type { Database, Json } from "./database.types.ts";

type PublicSchema = Database["public"];
export type TableName = keyof PublicSchema["Tables"];
export type Row<T extends TableName> = PublicSchema["Tables"][T]["Row"];
export type Insert<T extends TableName> = PublicSchema["Tables"][T]["Insert"];
export type Update<T extends TableName> = PublicSchema["Tables"][T]["Update"];
export type RpcName = keyof PublicSchema["Functions"];
export type RpcArgs<F extends RpcName> = PublicSchema["Functions"][F]["Args"];
export type RpcReturns<F extends RpcName> = PublicSchema["Functions"][F]["Returns"];

/** A row as postgres.js returns it: the named timestamp columns are `Date`s (null stays null). */
export type SqlRow<T extends TableName, Timestamps extends keyof Row<T> = never> =
  & Omit<Row<T>, Timestamps>
  & { [K in Timestamps]: null extends Row<T>[K] ? Date | null : Date };

/**
 * `T` with some columns' types replaced by narrower ones the generator cannot see: a closed union that
 * the schema holds with a check constraint (generated as `string`), or a not-null that our own writes
 * guarantee. `Overrides` may only name columns `T` has.
 */
export type Narrowed<T, Overrides extends { [K in keyof Overrides]: K extends keyof T ? unknown : never }> =
  & Omit<T, keyof Overrides>
  & Overrides;
