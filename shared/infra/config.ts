/**
 * Configuration, read from the environment once and validated with zod. A missing or malformed variable
 * stops the function at startup with a message naming every offending variable, so a misconfigured deploy
 * fails loudly instead of charging or refunding wrongly.
 */
import { z } from "./deps.ts";
import { type PayMethod, payMethods } from "../contract/common.ts";

export type Env = Readonly<Record<string, string | undefined>>;

/** Payment methods a channel can be chosen for (the browser SDK's `payMethod` values). */
export { type PayMethod, payMethods } from "../contract/common.ts";

const nonEmpty = z.string().trim().min(1, "must not be empty");
const webhookSecret = z.string().regex(/^whsec_[A-Za-z0-9+/=]{16,}$/, "must look like whsec_<base64>");
const postgresUrl = z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL");
const jwks = z.string().transform((text, ctx) => {
  try {
    const parsed = JSON.parse(text) as unknown;
    const keys = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown })?.keys;
    if (!Array.isArray(keys)) throw new Error("no keys");
    // symmetric (oct) keys cannot verify asymmetric tokens and must never be used as public keys
    return { keys: keys.filter((key) => (key as { kty?: string })?.kty !== "oct") as JsonWebKey[] };
  } catch {
    ctx.addIssue({ code: "custom", message: 'must be a JWKS JSON ({"keys": [...]}) or an array of JWKs' });
    return z.NEVER;
  }
});
const channelKeyMap = z.string().transform((text, ctx) => {
  try {
    return z.partialRecord(z.enum(payMethods), nonEmpty).parse(JSON.parse(text));
  } catch {
    ctx.addIssue({
      code: "custom",
      message: `must be a JSON object mapping ${payMethods.join("/")} to channel keys`,
    });
    return z.NEVER;
  }
});

/** One data-encryption key: `id:base64` of 32 random bytes (AES-256-GCM). */
const keyIdPattern = /^[A-Za-z0-9_-]{1,32}$/;
function decodeBase64(text: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}
const keyring = z.string().transform((text, ctx) => {
  const keys: { id: string; key: Uint8Array }[] = [];
  for (const entry of text.split(",").map((e) => e.trim()).filter((e) => e.length > 0)) {
    const [id = "", encoded = ""] = entry.split(":", 2);
    const key = decodeBase64(encoded);
    if (!keyIdPattern.test(id) || key?.length !== 32 || keys.some((k) => k.id === id)) {
      ctx.addIssue({
        code: "custom",
        message: "must be `id:base64,...` with unique ids ([A-Za-z0-9_-]) and 32-byte keys, newest first",
      });
      return z.NEVER;
    }
    keys.push({ id, key });
  }
  if (keys.length === 0) {
    ctx.addIssue({ code: "custom", message: "must name at least one key" });
    return z.NEVER;
  }
  return keys;
});

const envSchema = z.object({
  PORTONE_API_SECRET: nonEmpty,
  PORTONE_STORE_ID: nonEmpty,
  PORTONE_CHANNEL_KEY: nonEmpty,
  PORTONE_CHANNEL_KEYS: channelKeyMap.optional(),
  PORTONE_API_BASE: z.url({ protocol: /^https?$/ }).default("https://api.portone.io"),
  PORTONE_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(15_000),
  PORTONE_WEBHOOK_SECRET: webhookSecret.optional(),
  PORTONE_WEBHOOK_SECRET_PREVIOUS: webhookSecret.optional(),
  PORTONE_STORE_MODE: z.enum(["live", "test"]).default("live"),
  PORTONE_BILLING_CHANNEL_KEY: nonEmpty.optional(),
  DATA_ENCRYPTION_KEYS: keyring.optional(),
  IDENTITY_MAX_AGE_SECONDS: z.coerce.number().int().min(30).max(86_400).default(600),
  SUPABASE_URL: z.url({ protocol: /^https?$/ }),
  SUPABASE_ANON_KEY: z.string().optional(),
  SUPABASE_PUBLISHABLE_KEYS: z.string().optional(),
  SUPABASE_JWKS: jwks.optional(),
  SUPABASE_DB_URL: postgresUrl.optional(),
  DATABASE_URL: postgresUrl.optional(),
  DB_POOL_MAX: z.coerce.number().int().min(1).max(20).default(1),
  DB_PREPARE: z.enum(["auto", "true", "false"]).default("auto"),
  IDENTITY_CI_PEPPER: z.string().min(32, "must be at least 32 characters").optional(),
  CUSTOMER_CANCEL_POLICY: z.enum(["deny", "allow"]).default("deny"),
  RECONCILE_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  ALERT_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
});

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
  const result = envSchema.safeParse(env);
  const problems: { variable: string; message: string }[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) {
      const variable = String(issue.path[0] ?? "environment");
      problems.push({ variable, message: env[variable] === undefined ? "is missing" : issue.message });
    }
  }
  const values = result.success ? result.data : undefined;
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
