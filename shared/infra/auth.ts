/**
 * Who is calling. The caller's `Authorization: Bearer <jwt>` is verified with supabase-js `auth.getClaims`
 * against the project's JWKS (SUPABASE_JWKS when given, else the project's well-known endpoint; legacy
 * symmetric tokens fall back to a getUser round trip). getClaims checks the signature and expiry only, so
 * the role, subject and audience are checked here.
 *
 * Admins: a user whose `app_metadata.payments_admin` is `true`. app_metadata is writable only with the
 * service role (e.g. `auth.admin.updateUserById(id, { app_metadata: { payments_admin: true } })`), so a
 * user cannot grant it to themselves; it lands in the JWT at the next token refresh.
 */
import { createClient } from "./deps.ts";
import { AppError } from "./errors.ts";

export interface Caller {
  readonly userId: string;
  readonly isAdmin: boolean;
}

export type VerifyAccessToken = (token: string) => Promise<Caller>;

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function createAccessTokenVerifier(options: {
  supabaseUrl: string;
  anonKey: string;
  jwks: { keys: JsonWebKey[] } | undefined;
}): VerifyAccessToken {
  const client = createClient(options.supabaseUrl, options.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  type ClaimsOptions = NonNullable<Parameters<typeof client.auth.getClaims>[1]>;
  // JWKS keys were validated as objects by config; supabase-js checks each key's fields when importing it
  const claimsOptions: ClaimsOptions = options.jwks ? { jwks: options.jwks as ClaimsOptions["jwks"] } : {};
  return async (token) => {
    let result;
    try {
      result = await client.auth.getClaims(token, claimsOptions);
    } catch (cause) {
      throw new AppError("auth_unavailable", "Could not verify the access token; retry later", { cause });
    }
    const { data, error } = result;
    if (error) {
      const retryable = error.name === "AuthRetryableFetchError" || (error.status ?? 0) >= 500;
      if (retryable) throw new AppError("auth_unavailable", "Could not verify the access token; retry later");
      throw new AppError("unauthorized", "Invalid or expired access token");
    }
    const claims = data?.claims as Record<string, unknown> | undefined;
    if (
      !claims || claims.role !== "authenticated" || typeof claims.sub !== "string" ||
      !uuidPattern.test(claims.sub)
    ) {
      throw new AppError("unauthorized", "A signed-in user's access token is required");
    }
    if (
      claims.aud !== undefined && claims.aud !== "authenticated" &&
      !(Array.isArray(claims.aud) && claims.aud.includes("authenticated"))
    ) {
      throw new AppError("unauthorized", "Access token has the wrong audience");
    }
    const appMetadata = claims.app_metadata as { payments_admin?: unknown } | undefined;
    return { userId: claims.sub.toLowerCase(), isAdmin: appMetadata?.payments_admin === true };
  };
}

/** The token from `Authorization: Bearer <token>`, or a 401. */
export function bearerToken(request: Request): string {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/.exec(header.trim());
  if (!match?.[1]) throw new AppError("unauthorized", "Missing bearer access token");
  return match[1];
}
