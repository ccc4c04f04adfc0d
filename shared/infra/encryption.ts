/**
 * Encryption at rest for secrets we must be able to use again (billing keys, personal data): AES-256-GCM
 * through WebCrypto under keys from DATA_ENCRYPTION_KEYS. A sealed value names the key that sealed it, so
 * keys rotate by putting a new key first: new values use it, values sealed under older keys still open.
 *
 * The context (e.g. the table, column and owner) is authenticated as additional data, so a sealed value
 * copied into another column or another user's row does not open.
 */

export interface DataKey {
  readonly id: string;
  readonly key: Uint8Array;
}

const prefix = "v1";

function toBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

function importKey(key: DataKey, usage: "encrypt" | "decrypt"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", key.key as BufferSource, { name: "AES-GCM" }, false, [usage]);
}

export class DecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DecryptionError";
  }
}

/** Is this text a sealed value (rather than a value stored before encryption at rest)? */
export function isSealed(text: string): boolean {
  return /^v1\.[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/.test(text);
}

/** Encrypts under the current (first) key: `v1.<keyId>.<iv>.<ciphertext+tag>`, base64url parts. */
export async function seal(keys: readonly DataKey[], plaintext: string, context: string): Promise<string> {
  const current = keys[0];
  if (!current) throw new Error("no data encryption key configured");
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(context) },
    await importKey(current, "encrypt"),
    new TextEncoder().encode(plaintext),
  );
  return [prefix, current.id, toBase64Url(iv), toBase64Url(new Uint8Array(ciphertext))].join(".");
}

/** Decrypts a sealed value with the key it names; a missing key or a tampered value is a DecryptionError. */
export async function open(keys: readonly DataKey[], sealed: string, context: string): Promise<string> {
  if (!isSealed(sealed)) throw new DecryptionError("not a sealed value");
  const [, keyId, iv, ciphertext] = sealed.split(".") as [string, string, string, string];
  const key = keys.find((k) => k.id === keyId);
  if (!key) throw new DecryptionError(`data encryption key ${keyId} is not configured`);
  try {
    const plaintext = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: fromBase64Url(iv) as BufferSource,
        additionalData: new TextEncoder().encode(context),
      },
      await importKey(key, "decrypt"),
      fromBase64Url(ciphertext) as BufferSource,
    );
    return new TextDecoder().decode(plaintext);
  } catch {
    throw new DecryptionError("the sealed value does not open under its key and context");
  }
}

/** Whether a sealed value was made with an older key (worth re-sealing under the current one). */
export function sealedWithOlderKey(keys: readonly DataKey[], sealed: string): boolean {
  return sealed.split(".")[1] !== keys[0]?.id;
}
