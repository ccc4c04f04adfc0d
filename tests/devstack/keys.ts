/**
 * The dev stack's signing key: an ES256 key standing in for the project's Supabase Auth signing key.
 *
 * It lives in a file under the gitignored `.artifacts/` and is created on first use, so `deno task dev`
 * and `deno task token` agree across runs (a token from yesterday still verifies) while no private key is
 * ever committed or shared between clones. A deterministic derivation would have meant a private key
 * anyone could reproduce from the source.
 */
import { jose } from "../support/deps.ts";

export const repoRoot = new URL("../../", import.meta.url).pathname;
export const artifactsDir = `${repoRoot}.artifacts`;
export const defaultKeyFile = `${artifactsDir}/dev-signing-key.json`;
export const defaultStateFile = `${artifactsDir}/devstack.json`;
/** `deno task token` without an argument: one fixed dev user, so repeated calls act as the same person. */
export const defaultDevUserId = "00000000-0000-4000-8000-00000000d3e0";

interface KeyFile {
  readonly kid: string;
  readonly privateJwk: JsonWebKey;
  /** The identity functions' HMAC pepper; kept with the key so hashed CIs stay comparable across runs. */
  readonly identityCiPepper: string;
  /** Signed once so the printed anon key stays the same across runs (ECDSA signatures are randomized). */
  readonly anonKey: string;
}

export interface DevKeys {
  readonly kid: string;
  /** JWKS JSON for SUPABASE_JWKS and `/auth/v1/.well-known/jwks.json`. */
  readonly jwks: string;
  readonly publicJwk: JsonWebKey & { kid: string };
  readonly identityCiPepper: string;
  readonly anonKey: string;
  sign(
    claims: Record<string, unknown>,
    subject: string | undefined,
    expiresInSeconds: number,
  ): Promise<string>;
}

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

async function readOrCreate(path: string): Promise<KeyFile> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as KeyFile;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const { privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const kid = `dev-${randomHex(8)}`;
  const file: KeyFile = {
    kid,
    privateJwk: await jose.exportJWK(privateKey),
    identityCiPepper: randomHex(32),
    anonKey: await signWith(privateKey, kid, { role: "anon" }, undefined, 10 * 365 * 24 * 3600),
  };
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  // createNew: two processes racing on first use must not end up with different keys
  try {
    await Deno.writeTextFile(path, JSON.stringify(file, null, 2) + "\n", { createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      return JSON.parse(await Deno.readTextFile(path)) as KeyFile;
    }
    throw error;
  }
  return file;
}

export async function loadDevKeys(
  path = Deno.env.get("DEVSTACK_KEY_FILE") || defaultKeyFile,
): Promise<DevKeys> {
  const file = await readOrCreate(path);
  const privateKey = await jose.importJWK(file.privateJwk, "ES256");
  const { d: _private, ...publicPart } = file.privateJwk;
  const publicJwk = { ...publicPart, kid: file.kid, alg: "ES256", use: "sig" };
  return {
    kid: file.kid,
    publicJwk,
    jwks: JSON.stringify({ keys: [publicJwk] }),
    identityCiPepper: file.identityCiPepper,
    anonKey: file.anonKey,
    sign: (claims, subject, expiresInSeconds) =>
      signWith(privateKey, file.kid, claims, subject, expiresInSeconds),
  };
}

async function signWith(
  key: CryptoKey | Uint8Array,
  kid: string,
  claims: Record<string, unknown>,
  subject: string | undefined,
  expiresInSeconds: number,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new jose.SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
    .setIssuer("supabase-devstack")
    .setIssuedAt(now)
    .setExpirationTime(now + expiresInSeconds);
  if (subject) jwt.setSubject(subject);
  return await jwt.sign(key);
}

/**
 * A signed-in user's access token, shaped like Supabase Auth's. `admin` sets `app_metadata.payments_admin`,
 * which only the service role can set on a real project (the merchant's staff).
 */
export function userToken(keys: DevKeys, userId: string, options: { admin?: boolean } = {}): Promise<string> {
  return keys.sign(
    {
      role: "authenticated",
      aud: "authenticated",
      email: `${userId}@dev.local`,
      app_metadata: {
        provider: "email",
        providers: ["email"],
        ...(options.admin ? { payments_admin: true } : {}),
      },
      user_metadata: {},
      session_id: crypto.randomUUID(),
      is_anonymous: false,
    },
    userId,
    3600,
  );
}
