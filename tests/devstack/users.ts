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
