/**
 * The test-only Supabase bootstrap behaves like the platform where our migrations and RLS depend on it.
 */
import assert from "node:assert/strict";
import { adminSql, appDatabaseUrl } from "./support/test-database.ts";
import { postgres } from "../shared/infra/deps.ts";

Deno.test("supabase bootstrap", async (t) => {
  const sql = adminSql();
  try {
    await t.step("auth.uid(), auth.role() and auth.jwt() read request.jwt.claims like Supabase", async () => {
      const sub = crypto.randomUUID();
      const [row] = await sql.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${
          JSON.stringify({ sub, role: "authenticated" })
        }, true)`;
        return await tx`select auth.uid() as uid, auth.role() as role, auth.jwt() ->> 'sub' as jwt_sub`;
      });
      assert.deepEqual({ ...row }, { uid: sub, role: "authenticated", jwt_sub: sub });
      const [unset] = await sql`select auth.uid() as uid, auth.role() as role`;
      assert.deepEqual({ ...unset }, { uid: null, role: null });
    });

    await t.step(
      "the legacy request.jwt.claim.sub wins over request.jwt.claims, as on Supabase",
      async () => {
        const legacy = crypto.randomUUID();
        const [row] = await sql.begin(async (tx) => {
          await tx`select set_config('request.jwt.claim.sub', ${legacy}, true)`;
          await tx`select set_config('request.jwt.claims', ${
            JSON.stringify({ sub: crypto.randomUUID() })
          }, true)`;
          return await tx`select auth.uid() as uid`;
        });
        assert.equal(row?.uid, legacy);
      },
    );

    await t.step("roles carry Supabase's attributes", async () => {
      const roles = await sql<
        { rolname: string; rolsuper: boolean; rolbypassrls: boolean; rolcanlogin: boolean }[]
      >`
        select rolname, rolsuper, rolbypassrls, rolcanlogin from pg_roles
        where rolname in ('anon', 'authenticated', 'service_role', 'authenticator', 'postgres') order by rolname`;
      assert.deepEqual(
        roles.map((r) => ({ ...r })),
        [
          { rolname: "anon", rolsuper: false, rolbypassrls: false, rolcanlogin: false },
          { rolname: "authenticated", rolsuper: false, rolbypassrls: false, rolcanlogin: false },
          { rolname: "authenticator", rolsuper: false, rolbypassrls: false, rolcanlogin: true },
          { rolname: "postgres", rolsuper: false, rolbypassrls: true, rolcanlogin: true },
          { rolname: "service_role", rolsuper: false, rolbypassrls: true, rolcanlogin: false },
        ],
      );
    });

    await t.step("a table created without explicit grants is closed to the API roles", async () => {
      const app = postgres(appDatabaseUrl(), { max: 1, onnotice: () => {} });
      try {
        await assert.rejects(
          app.begin(async (tx) => {
            await tx`create table public.forgotten_grant (id int)`;
            await tx`set local role authenticated`;
            await tx`select * from public.forgotten_grant`;
          }),
          (error: { code?: string }) => error.code === "42501",
        );
      } finally {
        await app.end();
      }
    });
  } finally {
    await sql.end();
  }
});
