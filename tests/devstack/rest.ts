/**
 * A deliberately tiny stand-in for PostgREST, so the demo page can use supabase-js's `from().select()` and
 * `rpc()` unchanged. It runs each request the way PostgREST does — claims in `request.jwt.claims`,
 * `set local role <role>` inside one transaction — so grants and RLS decide what a caller sees. Only what
 * the demo needs is understood (column lists, `eq` filters, `order`, RPC with named JSON arguments);
 * anything else is refused with 400 rather than silently answered wrongly.
 */
import type { Sql } from "../../shared/infra/deps.ts";

const identifier = /^[a-z_][a-z0-9_]*$/;
const apiRoles = new Set(["anon", "authenticated", "service_role"]);

export interface RestCaller {
  readonly role: string;
  readonly claims: Record<string, unknown>;
}

function restError(status: number, message: string, code = "PGRST100", details: string | null = null) {
  return Response.json({ code, message, details, hint: null }, { status });
}

/** PostgreSQL errors as PostgREST maps them: privilege errors 401/403, everything else 400. */
function databaseError(error: unknown, caller: RestCaller): Response {
  const e = error as { code?: string; message?: string; detail?: string };
  if (!e.code) throw error;
  const status = e.code === "42501" ? (caller.role === "anon" ? 401 : 403) : e.code === "42883" ? 404 : 400;
  return restError(status, e.message ?? "database error", e.code, e.detail ?? null);
}

/** PostgreSQL renders the JSON, as PostgREST has it do, so bigint and numeric come out as JSON numbers. */
function asJson(query: string): string {
  return `select coalesce(json_agg(r), '[]'::json) as body from (${query}) r`;
}

async function asCaller<T>(sql: Sql, caller: RestCaller, run: (tx: Sql) => Promise<T>): Promise<T> {
  if (!apiRoles.has(caller.role)) throw Object.assign(new Error("unknown role"), { code: "42501" });
  return await sql.begin(async (tx) => {
    await tx`select set_config('request.jwt.claims', ${JSON.stringify(caller.claims)}, true)`;
    await tx.unsafe(`set local role ${caller.role}`);
    return await run(tx as unknown as Sql);
  }) as T;
}

export async function handleRest(
  sql: Sql,
  caller: RestCaller,
  request: Request,
  path: string,
): Promise<Response> {
  const url = new URL(request.url);
  const rpc = /^rpc\/([a-z_][a-z0-9_]*)$/.exec(path);
  try {
    if (rpc && request.method === "POST") {
      const args = (await request.json().catch(() => ({}))) as Record<string, unknown>;
      const names = Object.keys(args);
      if (!names.every((name) => identifier.test(name))) return restError(400, "invalid argument name");
      const call = `select * from public.${rpc[1]}(${
        names.map((name, i) => `${name} => $${i + 1}`).join(", ")
      })`;
      const [rows, returnsSet] = await asCaller(sql, caller, async (tx) => {
        // objects and arrays go as jsonb, as PostgREST passes JSON arguments
        const values = names.map((name) => {
          const value = args[name];
          return value !== null && typeof value === "object" ? tx.json(value as never) : value;
        });
        const [proc] = await tx<{ proretset: boolean }[]>`
          select proretset from pg_proc where proname = ${rpc[1]!} and pronamespace = 'public'::regnamespace`;
        return [await tx.unsafe(asJson(call), values as never[]), proc?.proretset ?? true] as const;
      });
      const body = (rows[0]?.body ?? []) as unknown[];
      return Response.json(returnsSet ? body : (body[0] ?? null));
    }
    const table = /^([a-z_][a-z0-9_]*)$/.exec(path)?.[1];
    if (table && request.method === "GET") {
      const select = url.searchParams.get("select") ?? "*";
      const columns = select === "*" ? ["*"] : select.split(",").map((c) => c.trim());
      if (!columns.every((c) => c === "*" || identifier.test(c))) {
        return restError(400, "the devstack REST shim understands plain column lists only");
      }
      const where: string[] = [];
      const values: string[] = [];
      let order = "";
      for (const [key, value] of url.searchParams) {
        if (key === "select") continue;
        if (key === "order") {
          const m = /^([a-z_][a-z0-9_]*)(?:\.(asc|desc))?$/.exec(value);
          if (!m) return restError(400, "the devstack REST shim understands order=column.asc|desc only");
          order = ` order by ${m[1]} ${m[2] ?? "asc"}`;
        } else if (identifier.test(key) && value.startsWith("eq.")) {
          values.push(value.slice(3));
          where.push(`${key} = $${values.length}`);
        } else {
          return restError(400, `the devstack REST shim does not understand '${key}=${value}'`);
        }
      }
      const text = `select ${columns.join(", ")} from public.${table}` +
        (where.length ? ` where ${where.join(" and ")}` : "") + order;
      const rows = await asCaller(sql, caller, (tx) => tx.unsafe(asJson(text), values));
      return Response.json(rows[0]?.body ?? []);
    }
    return restError(404, `the devstack REST shim does not serve ${request.method} /rest/v1/${path}`);
  } catch (error) {
    return databaseError(error, caller);
  }
}
