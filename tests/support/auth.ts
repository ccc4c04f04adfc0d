/**
 * A local ES256 signing key standing in for the project's Supabase Auth keys: tests mint access tokens
 * with it and hand its public JWKS to the functions, exactly as SUPABASE_JWKS carries the real one.
 */
import { jose } from "./deps.ts";

const keyId = `test-key-${crypto.randomUUID()}`;
const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
const publicJwk = { ...(await jose.exportJWK(publicKey)), kid: keyId, alg: "ES256", use: "sig" };

/** The JWKS JSON to put in SUPABASE_JWKS. */
export const testJwks = JSON.stringify({ keys: [publicJwk] });

export interface TokenOptions {
  readonly role?: string;
  readonly expiresInSeconds?: number;
  readonly admin?: boolean;
  readonly audience?: string;
  /** Sign with a different key under the same key id (a forgery). */
  readonly forged?: boolean;
}

export async function signAccessToken(userId: string, options: TokenOptions = {}): Promise<string> {
  const key = options.forged ? (await jose.generateKeyPair("ES256")).privateKey : privateKey;
  const now = Math.floor(Date.now() / 1000);
  return await new jose.SignJWT({
    role: options.role ?? "authenticated",
    app_metadata: options.admin ? { provider: "email", payments_admin: true } : { provider: "email" },
    user_metadata: {},
  })
    .setProtectedHeader({ alg: "ES256", kid: keyId, typ: "JWT" })
    .setSubject(userId)
    .setAudience(options.audience ?? "authenticated")
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresInSeconds ?? 3600))
    .sign(key);
}
