/**
 * Cold-start floor: a module that imports postgres.js, and a request that opens one connection and sends one
 * query (what a user-facing function's first request needs for the account check, and nothing else).
 */
import { postgres } from "../../../shared/infra/deps.ts";

const sql = postgres(Deno.env.get("SUPABASE_DB_URL")!, { max: 1, prepare: true, fetch_types: false });

export default {
  async fetch(_request: Request): Promise<Response> {
    const rows = await sql`select 1 as one where ${1}::int = 1`;
    return new Response(JSON.stringify({ rows: rows.length }));
  },
};
