/**
 * Configuration, read from the environment once and validated. A missing or malformed variable stops the
 * function at startup with a message naming every offending variable, so a misconfigured deploy fails
 * loudly instead of charging or refunding wrongly.
 *
 * Plain checks rather than a zod schema: this runs at every cold start, and building and compiling a
 * 25-field object schema cost more than everything else a function does before its first request.
 */
import { type PayMethod, payMethods } from "../contract/pay-methods.ts";

export type Env = Readonly<Record<string, string | undefined>>;

/** Payment methods a channel can be chosen for (the browser SDK's `payMethod` values). */
export { type PayMethod, payMethods } from "../contract/pay-methods.ts";

/** Why a set variable was refused (the message follows the variable's name). */
class Invalid extends Error {}

/** Reads one set variable (its raw text) or throws Invalid. */
type Reader<T> = (raw: string) => T;

const nonEmpty: Reader<string> = (raw) => {
  const text = raw.trim();
  if (text.length === 0) throw new Invalid("must not be empty");
  return text;
};
const matching = (pattern: RegExp, message: string): Reader<string> => (raw) => {
  if (!pattern.test(raw)) throw new Invalid(message);
  return raw;
};
const atLeast32: Reader<string> = (raw) => {
  if (raw.length < 32) throw new Invalid("must be at least 32 characters");
  return raw;
};
const anyText: Reader<string> = (raw) => raw;
const webhookSecret = matching(/^whsec_[A-Za-z0-9+/=]{16,}$/, "must look like whsec_<base64>");
const postgresUrl = matching(/^postgres(ql)?:\/\//, "must be a postgres:// URL");

/** An absolute http(s) URL (`http:host` without `//` is refused: URL would quietly read it as a host). */
const httpUrl: Reader<string> = (raw) => {
  const text = raw.trim();
  const url = /^https?:\/\//i.test(text) ? URL.parse(text) : null;
  if (!url || !/^https?:$/.test(url.protocol)) throw new Invalid("must be an http(s) URL");
  return text.replace(/[\t\n\r]/g, "");
};
const integer = (min: number, max: number): Reader<number> => (raw) => {
  const value = raw.trim() === "" ? NaN : Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new Invalid(`must be an integer from ${min} to ${max}`);
  }
  return value;
};
const oneOf = <const T extends string>(values: readonly T[]): Reader<T> => (raw) => {
  if (!(values as readonly string[]).includes(raw)) throw new Invalid(`must be one of ${values.join(", ")}`);
  return raw as T;
};

const jwks: Reader<{ keys: JsonWebKey[] }> = (text) => {
  try {
    const parsed = JSON.parse(text) as unknown;
    const keys = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown })?.keys;
    // jose refuses a key set whose keys are not all objects; it is built at the first token, so refuse here
    if (
      !Array.isArray(keys) ||
      !keys.every((key) => key !== null && typeof key === "object" && !Array.isArray(key))
    ) {
      throw new Error("no keys");
    }
    // symmetric (oct) keys cannot verify asymmetric tokens and must never be used as public keys
    return { keys: keys.filter((key) => (key as { kty?: string })?.kty !== "oct") as JsonWebKey[] };
  } catch {
    throw new Invalid('must be a JWKS JSON ({"keys": [...]}) or an array of JWKs');
  }
};

const channelKeyMap: Reader<Partial<Record<PayMethod, string>>> = (text) => {
  const refuse = () => new Invalid(`must be a JSON object mapping ${payMethods.join("/")} to channel keys`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw refuse();
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw refuse();
  const keys: Partial<Record<PayMethod, string>> = {};
  for (const [method, key] of Object.entries(parsed)) {
    if (!(payMethods as readonly string[]).includes(method) || typeof key !== "string" || !key.trim()) {
      throw refuse();
    }
    keys[method as PayMethod] = key.trim();
  }
  return keys;
};

/** One data-encryption key: `id:base64` of 32 random bytes (AES-256-GCM). */
const keyIdPattern = /^[A-Za-z0-9_-]{1,32}$/;
function decodeBase64(text: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}
const keyring: Reader<{ id: string; key: Uint8Array }[]> = (text) => {
  const keys: { id: string; key: Uint8Array }[] = [];
  for (const entry of text.split(",").map((e) => e.trim()).filter((e) => e.length > 0)) {
    const [id = "", encoded = ""] = entry.split(":", 2);
    const key = decodeBase64(encoded);
    if (!keyIdPattern.test(id) || key?.length !== 32 || keys.some((k) => k.id === id)) {
      throw new Invalid(
        "must be `id:base64,...` with unique ids ([A-Za-z0-9_-]) and 32-byte keys, newest first",
      );
    }
    keys.push({ id, key });
  }
  if (keys.length === 0) throw new Invalid("must name at least one key");
  return keys;
};

/** How each variable is read: required, optional (undefined when unset) or with a default. */
const required = <T>(read: Reader<T>) => ({ read, unset: "missing" as const });
const optional = <T>(read: Reader<T>) => ({ read, unset: "undefined" as const });
const withDefault = <T>(read: Reader<T>, fallback: T) => ({ read, unset: "default" as const, fallback });

const variables = {
  PORTONE_API_SECRET: required(nonEmpty),
  PORTONE_STORE_ID: required(nonEmpty),
  PORTONE_CHANNEL_KEY: required(nonEmpty),
  PORTONE_CHANNEL_KEYS: optional(channelKeyMap),
  PORTONE_API_BASE: withDefault(httpUrl, "https://api.portone.io"),
  PORTONE_TIMEOUT_MS: withDefault(integer(100, 120_000), 15_000),
  PORTONE_WEBHOOK_SECRET: optional(webhookSecret),
  PORTONE_WEBHOOK_SECRET_PREVIOUS: optional(webhookSecret),
  PORTONE_STORE_MODE: withDefault(oneOf(["live", "test"]), "live"),
  PORTONE_BILLING_CHANNEL_KEY: optional(nonEmpty),
  DATA_ENCRYPTION_KEYS: optional(keyring),
  IDENTITY_MAX_AGE_SECONDS: withDefault(integer(30, 86_400), 600),
  SUPABASE_URL: required(httpUrl),
  SUPABASE_ANON_KEY: optional(anyText),
  SUPABASE_PUBLISHABLE_KEYS: optional(anyText),
  SUPABASE_JWKS: optional(jwks),
  SUPABASE_DB_URL: optional(postgresUrl),
  DATABASE_URL: optional(postgresUrl),
  DB_POOL_MAX: withDefault(integer(1, 20), 1),
  DB_PREPARE: withDefault(oneOf(["auto", "true", "false"]), "auto"),
  IDENTITY_CI_PEPPER: optional(atLeast32),
  CUSTOMER_CANCEL_POLICY: withDefault(oneOf(["deny", "allow"]), "deny"),
  RECONCILE_SECRET: optional(atLeast32),
  ALERT_WEBHOOK_URL: optional(httpUrl),
};

type Variables = typeof variables;
type Values = {
  -readonly [K in keyof Variables]: Variables[K] extends { read: Reader<infer T>; unset: infer U }
    ? U extends "undefined" ? T | undefined : T
    : never;
};

/** Every variable read; each problem names its variable (a bad value's text is never echoed: it may be a secret). */
function readVariables(env: Env, problems: { variable: string; message: string }[]): Values {
  const values: Record<string, unknown> = {};
  for (const [variable, spec] of Object.entries(variables)) {
    const raw = env[variable];
    if (raw === undefined) {
      if (spec.unset === "missing") problems.push({ variable, message: "is missing" });
      else values[variable] = "fallback" in spec ? spec.fallback : undefined;
      continue;
    }
    try {
      values[variable] = spec.read(raw);
    } catch (error) {
      if (!(error instanceof Invalid)) throw error;
      problems.push({ variable, message: error.message });
    }
  }
  return values as Values;
}

export interface Config {
  readonly portone: {
    readonly apiSecret: string;
    readonly storeId: string;
    readonly apiBase: string;
    readonly timeoutMs: number;
    readonly defaultChannelKey: string;
    readonly channelKeys: Readonly<Partial<Record<PayMethod, string>>>;
    /** Current secret first; the previous one is accepted during rotation. */
    readonly webhookSecrets: readonly string[];
    /** False only when PORTONE_STORE_MODE=test: then TEST-channel payments may pay orders. */
    readonly requireLiveChannel: boolean;
    /** The channel saved cards must have been issued through; their charges must report it. */
    readonly billingChannelKey: string;
  };
  readonly supabase: {
    readonly url: string;
    /** Any client key, sent as `apikey` only when Supabase Auth checks a legacy (HS256) token. */
    readonly anonKey: string;
    readonly jwks: { keys: JsonWebKey[] } | undefined;
  };
  readonly database: {
    readonly url: string;
    readonly poolMax: number;
    /** Named prepared statements (one round trip less per statement), where the connection keeps them. */
    readonly prepare: boolean;
  };
  readonly identityCiPepper: string | undefined;
  /** How old a PortOne identity verification may be when its owner completes it with us. */
  readonly identityVerificationMaxAgeSeconds: number;
  /** Keys that encrypt secrets at rest, the current (encrypting) one first; older ones still decrypt. */
  readonly dataEncryptionKeys: readonly { readonly id: string; readonly key: Uint8Array }[] | undefined;
  /** Whether a payment's owner may cancel it through `cancel` (admins always may). Default: deny. */
  readonly customerCancelPolicy: "deny" | "allow";
  /** The bearer secret the scheduler presents to `reconcile`. */
  readonly reconcileSecret: string | undefined;
  /** Slack/Discord incoming-webhook URL reconcile alerts to; a secret (never logged). */
  readonly alertWebhookUrl: string | undefined;
}

export class ConfigError extends Error {
  readonly variables: readonly string[];
  constructor(problems: { variable: string; message: string }[]) {
    super(`Invalid configuration: ${problems.map((p) => `${p.variable} ${p.message}`).join("; ")}`);
    this.name = "ConfigError";
    this.variables = problems.map((p) => p.variable);
  }
}

function firstPublishableKey(json: string | undefined): string | undefined {
  if (!json) return undefined;
  try {
    const keys = JSON.parse(json) as Record<string, unknown>;
    const value = Object.values(keys).find((v) => typeof v === "string");
    return value as string | undefined;
  } catch {
    return undefined;
  }
}

/** What each function additionally needs beyond the common variables. */
export type ConfigNeed = "webhook" | "identity" | "reconcile" | "encryption";

export function readConfig(env: Env, needs: readonly ConfigNeed[] = []): Config {
  const problems: { variable: string; message: string }[] = [];
  const read = readVariables(env, problems);
  const values = problems.length === 0 ? read : undefined;
  if (values && !values.DATABASE_URL && !values.SUPABASE_DB_URL) {
    problems.push({ variable: "SUPABASE_DB_URL", message: "is missing (or set DATABASE_URL)" });
  }
  if (values && needs.includes("webhook") && !values.PORTONE_WEBHOOK_SECRET) {
    problems.push({ variable: "PORTONE_WEBHOOK_SECRET", message: "is missing" });
  }
  if (values && needs.includes("identity") && !values.IDENTITY_CI_PEPPER) {
    problems.push({ variable: "IDENTITY_CI_PEPPER", message: "is missing" });
  }
  if (values && needs.includes("encryption") && !values.DATA_ENCRYPTION_KEYS) {
    problems.push({ variable: "DATA_ENCRYPTION_KEYS", message: "is missing" });
  }
  // the old flag defaulted to "accept TEST payments"; a deploy still setting it must choose a mode knowingly
  if (env.PORTONE_REQUIRE_LIVE_CHANNEL !== undefined) {
    problems.push({
      variable: "PORTONE_REQUIRE_LIVE_CHANNEL",
      message: "is replaced by PORTONE_STORE_MODE (live by default; test for a test store)",
    });
  }
  if (values && needs.includes("reconcile") && !values.RECONCILE_SECRET) {
    problems.push({ variable: "RECONCILE_SECRET", message: "is missing" });
  }
  const databaseUrl = values?.DATABASE_URL ?? values?.SUPABASE_DB_URL;
  // Supavisor's transaction mode (port 6543) hands each transaction to any server connection, where a
  // statement prepared on another one does not exist; a failed `commit` there can even end as a rollback.
  const transactionPooler = databaseUrl !== undefined && new URL(databaseUrl).port === "6543";
  if (values?.DB_PREPARE === "true" && transactionPooler) {
    problems.push({
      variable: "DB_PREPARE",
      message:
        "must not be true with Supavisor's transaction pooler (port 6543): it does not keep prepared statements",
    });
  }
  if (problems.length > 0 || !values) throw new ConfigError(problems);

  return {
    portone: {
      apiSecret: values.PORTONE_API_SECRET,
      storeId: values.PORTONE_STORE_ID,
      apiBase: new URL(values.PORTONE_API_BASE).origin,
      timeoutMs: values.PORTONE_TIMEOUT_MS,
      defaultChannelKey: values.PORTONE_CHANNEL_KEY,
      channelKeys: values.PORTONE_CHANNEL_KEYS ?? {},
      webhookSecrets: [values.PORTONE_WEBHOOK_SECRET, values.PORTONE_WEBHOOK_SECRET_PREVIOUS].filter(
        (secret): secret is string => secret !== undefined,
      ),
      requireLiveChannel: values.PORTONE_STORE_MODE !== "test",
      billingChannelKey: values.PORTONE_BILLING_CHANNEL_KEY ?? values.PORTONE_CHANNEL_KEYS?.CARD ??
        values.PORTONE_CHANNEL_KEY,
    },
    supabase: {
      url: values.SUPABASE_URL,
      anonKey: values.SUPABASE_ANON_KEY ?? firstPublishableKey(values.SUPABASE_PUBLISHABLE_KEYS) ?? "anon",
      jwks: values.SUPABASE_JWKS,
    },
    // DATABASE_URL wins so a deploy can point functions at the transaction pooler
    database: {
      url: databaseUrl!,
      poolMax: values.DB_POOL_MAX,
      // auto: only on the platform's own SUPABASE_DB_URL, a direct connection (as are session-mode poolers,
      // which need DB_PREPARE=true); a DATABASE_URL override may be any pooler
      prepare: values.DB_PREPARE === "auto"
        ? !values.DATABASE_URL && !transactionPooler
        : values.DB_PREPARE === "true",
    },
    identityCiPepper: values.IDENTITY_CI_PEPPER,
    identityVerificationMaxAgeSeconds: values.IDENTITY_MAX_AGE_SECONDS,
    dataEncryptionKeys: values.DATA_ENCRYPTION_KEYS,
    customerCancelPolicy: values.CUSTOMER_CANCEL_POLICY,
    reconcileSecret: values.RECONCILE_SECRET,
    alertWebhookUrl: values.ALERT_WEBHOOK_URL,
  };
}

/** The channel key the browser should pay through for a method. */
export function channelKeyFor(config: Config, method: PayMethod | undefined): string {
  return (method && config.portone.channelKeys[method]) || config.portone.defaultChannelKey;
}
