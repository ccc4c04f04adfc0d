/** Dev users: there is no Supabase Auth server locally, so a user is just its `auth.users` row and a token. */
import type { Sql } from "../../shared/infra/deps.ts";

export async function ensureUser(sql: Sql, userId: string, options: { admin?: boolean } = {}): Promise<void> {
  const appMetadata = {
    provider: "email",
    providers: ["email"],
    ...(options.admin ? { payments_admin: true } : {}),
  };
  await sql`
    insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, email_confirmed_at,
                            created_at, updated_at)
    values (${userId}, 'authenticated', 'authenticated', ${`${userId}@dev.local`},
            ${sql.json(appMetadata)}, '{}', now(), now(), now())
    on conflict (id) do update set raw_app_meta_data = excluded.raw_app_meta_data`;
}

/** Runs `create_order` as the user, the way PostgREST would run `supabase.rpc('create_order', …)`. */
export async function createOrderAs(
  sql: Sql,
  userId: string,
  items: { product_id: string; quantity: number }[],
): Promise<{ id: string; order_name: string; total_amount: number; currency: string; status: string }> {
  const [order] = await sql.begin(async (tx) => {
    await tx`select set_config('request.jwt.claims', ${
      JSON.stringify({ sub: userId, role: "authenticated" })
    }, true)`;
    await tx`set local role authenticated`;
    return await tx<
      { id: string; order_name: string; total_amount: number; currency: string; status: string }[]
    >`
      select id, order_name, total_amount, currency, status from public.create_order(${tx.json(items)})`;
  });
  return order!;
}
