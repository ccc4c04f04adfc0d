/**
 * Who is calling. The caller's `Authorization: Bearer <jwt>` is verified locally with jose against the
 * project's public keys (auth-keys.ts): asymmetric algorithms only, signature, `exp` and `nbf`; then the
 * role, subject and audience are checked here. Legacy symmetric (HS256) tokens cannot be verified without
 * the project's secret and are checked by Supabase Auth itself (`GET /auth/v1/user`).
 *
 * Then the user must still exist: a token outlives the account it was issued for (deleted, soft-deleted
 * or banned users keep a valid token until it expires), so every verified token costs one primary-key
 * lookup in `auth.users` (`isActiveUser`). Checking here rather than at the first write means a deleted
 * admin cannot act either, and no handler sees a user the database does not know.
 *
 * Answers: anything wrong with the token or its user → 401 `unauthorized`; 503 `auth_unavailable` only
 * when no key set can be had or Supabase Auth cannot be reached.
 *
 * Admins: a user whose `app_metadata.payments_admin` is `true`. app_metadata is writable only with the
 * service role (e.g. `auth.admin.updateUserById(id, { app_metadata: { payments_admin: true } })`), so a
 * user cannot grant it to themselves; it lands in the JWT at the next token refresh.
 */
import { loadJose } from "./deps.ts";
import { createKeyResolver } from "./auth-keys.ts";
import type { Sql } from "./db.ts";
import { AppError } from "./errors.ts";

export interface Caller {
  readonly userId: string;
  readonly isAdmin: boolean;
}

export type VerifyAccessToken = (token: string) => Promise<Caller>;

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The algorithms Supabase Auth signs with (its signing keys: ES256 by default, RS256, Ed25519). */
const asymmetricAlgorithms = ["ES256", "RS256", "EdDSA"];
const authServerTimeoutMs = 5_000;

export interface AccessTokenVerifierOptions {
  readonly supabaseUrl: string;
  /** Any client key; Supabase Auth wants one as `apikey` for the legacy-token check. */
  readonly anonKey: string;
  readonly jwks: { keys: JsonWebKey[] } | undefined;
  /** Whether `auth.users` has this user, not deleted and not banned. */
  readonly isActiveUser: (userId: string) => Promise<boolean>;
}

function unauthorized(message = "Invalid or expired access token"): AppError {
  return new AppError("unauthorized", message);
}

/** Claims of a legacy HS256 token, from Supabase Auth's own view of the user. */
async function claimsFromAuthServer(options: AccessTokenVerifierOptions, token: string) {
  let response: Response;
  try {
    response = await fetch(new URL("/auth/v1/user", options.supabaseUrl), {
      headers: { authorization: `Bearer ${token}`, apikey: options.anonKey },
      signal: AbortSignal.timeout(authServerTimeoutMs),
    });
  } catch (cause) {
    throw new AppError("auth_unavailable", "Could not verify the access token; retry later", { cause });
  }
  if (response.status >= 500 || response.status === 429) {
    await response.body?.cancel();
    throw new AppError("auth_unavailable", "Could not verify the access token; retry later");
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw unauthorized();
  }
  const user = await response.json().catch(() => null) as Record<string, unknown> | null;
  return { sub: user?.id, role: user?.role, aud: user?.aud, app_metadata: user?.app_metadata };
}

export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): VerifyAccessToken {
  const keyFor = createKeyResolver({ supabaseUrl: options.supabaseUrl, configured: options.jwks });
  return async (token) => {
    // jose is loaded by the first token checked (functions that take none never load it)
    const { decodeProtectedHeader, jwtVerify } = await loadJose();
    let alg: unknown;
    try {
      if (token.split(".").length !== 3) throw new Error("not a compact JWS");
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw unauthorized();
    }
    let claims: Record<string, unknown>;
    if (alg === "HS256") {
      claims = await claimsFromAuthServer(options, token);
    } else {
      try {
        const verified = await jwtVerify(token, keyFor, {
          algorithms: asymmetricAlgorithms,
          requiredClaims: ["exp", "sub"],
        });
        claims = verified.payload;
      } catch (error) {
        if (error instanceof AppError) throw error; // no key set could be had: auth_unavailable
        throw unauthorized();
      }
    }
    if (claims.role !== "authenticated" || typeof claims.sub !== "string" || !uuidPattern.test(claims.sub)) {
      throw unauthorized("A signed-in user's access token is required");
    }
    if (
      claims.aud !== undefined && claims.aud !== "authenticated" &&
      !(Array.isArray(claims.aud) && claims.aud.includes("authenticated"))
    ) {
      throw unauthorized("Access token has the wrong audience");
    }
    const userId = claims.sub.toLowerCase();
    if (!(await options.isActiveUser(userId))) throw unauthorized("This user no longer exists");
    const appMetadata = claims.app_metadata as { payments_admin?: unknown } | undefined;
    return { userId, isAdmin: appMetadata?.payments_admin === true };
  };
}

/** `isActiveUser` against Supabase Auth's own table (one primary-key lookup). */
export function activeUserLookup(sql: Sql): (userId: string) => Promise<boolean> {
  return async (userId) => {
    const rows = await sql`
      select 1 from auth.users
      where id = ${userId} and deleted_at is null and (banned_until is null or banned_until <= now())`;
    return rows.length > 0;
  };
}

/** The token from `Authorization: Bearer <token>`, or a 401. */
export function bearerToken(request: Request): string {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/.exec(header.trim());
  if (!match?.[1]) throw new AppError("unauthorized", "Missing bearer access token");
  return match[1];
}
