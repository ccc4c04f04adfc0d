/**
 * The public keys that verify users' access tokens: SUPABASE_JWKS when the platform injects it, plus the
 * project's `/auth/v1/.well-known/jwks.json`, fetched when a key id is not among the keys we hold (a key
 * rotated in since boot) or when nothing was configured.
 *
 * A key id nobody knows is the cheapest thing an anonymous caller can send, so it must not cost a fetch
 * each time: the key set is fetched at most once per `refetchIntervalMs` (successful or not) and
 * concurrent misses share one fetch. Only "we hold no key set at all and cannot fetch one" is an outage
 * (`auth_unavailable`); a key id missing from a key set we have is the caller's problem (401).
 */
import { type Jose, type JWSHeaderParameters, loadJose } from "./deps.ts";
import { AppError } from "./errors.ts";
import { log } from "./log.ts";

type LocalKeySet = ReturnType<Jose["createLocalJWKSet"]>;
export type KeyResolver = (header: JWSHeaderParameters) => Promise<CryptoKey>;

export interface KeySetOptions {
  readonly supabaseUrl: string;
  readonly configured: { keys: JsonWebKey[] } | undefined;
  readonly refetchIntervalMs?: number;
  /** A fetched key set older than this is fetched again before use (kept if that fetch fails). */
  readonly maxAgeMs?: number;
  readonly timeoutMs?: number;
}

export function createKeyResolver(options: KeySetOptions): KeyResolver {
  const url = new URL("/auth/v1/.well-known/jwks.json", options.supabaseUrl).href;
  const refetchIntervalMs = options.refetchIntervalMs ?? 30_000;
  const maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  // config validated the JSON shape; jose checks each key when it is first used (jose itself is loaded by
  // the first token checked)
  let configured: LocalKeySet | undefined;
  let fetched: { keys: LocalKeySet; at: number } | undefined;
  let lastAttemptAt = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;

  function refetch(): Promise<void> {
    inFlight ??= (async () => {
      lastAttemptAt = Date.now();
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
        if (!response.ok) throw new Error(`key set answered HTTP ${response.status}`);
        const jose = await loadJose();
        fetched = { keys: jose.createLocalJWKSet(await response.json()), at: Date.now() };
      } catch (error) {
        log("warn", "auth_keys_unavailable", { error });
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  }

  const mayRefetch = () => Date.now() - lastAttemptAt >= refetchIntervalMs;

  /** The key from `keys`, or undefined when no key matches the header's kid and alg. */
  async function lookup(jose: Jose, keys: LocalKeySet | undefined, header: JWSHeaderParameters) {
    if (!keys) return undefined;
    try {
      return await keys(header) as CryptoKey;
    } catch (error) {
      if (error instanceof jose.errors.JWKSNoMatchingKey) return undefined;
      throw error; // several matching keys, a malformed key: the token cannot be verified (401)
    }
  }

  return async (header) => {
    const jose = await loadJose();
    if (options.configured) configured ??= jose.createLocalJWKSet(options.configured as never);
    const own = await lookup(jose, configured, header);
    if (own) return own;
    if ((!fetched || Date.now() - fetched.at > maxAgeMs) && mayRefetch()) await refetch();
    let key = await lookup(jose, fetched?.keys, header);
    if (!key && fetched && mayRefetch()) {
      await refetch();
      key = await lookup(jose, fetched.keys, header);
    }
    if (key) return key;
    if (!configured && !fetched) {
      throw new AppError("auth_unavailable", "Could not verify the access token; retry later");
    }
    throw new jose.errors.JWKSNoMatchingKey();
  };
}
