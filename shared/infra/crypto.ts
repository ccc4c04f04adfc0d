/** Small WebCrypto helpers; hex is how hashes and ids are stored and compared. */

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(text: string): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));
}

export async function hmacSha256Hex(key: string, text: string): Promise<string> {
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return hex(new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, new TextEncoder().encode(text))));
}

/** A paymentId: 128 random bits, so nobody can guess another customer's, within PortOne's id limits. */
export function newPaymentId(): string {
  return `pay_${hex(crypto.getRandomValues(new Uint8Array(16)))}`;
}
