/**
 * Structured logging: one JSON line per event. The only module allowed to touch the console, and the one
 * place that redacts: keys that can hold secrets or personal data are masked whatever their depth.
 */
const redactedKeys = new Set(
  [
    "authorization",
    "apikey",
    "secret",
    "password",
    "billingkey",
    "billing_key",
    "ci",
    "di",
    "ci_hash",
    "cardnumber",
    "card_number",
    "number",
    "accountnumber",
    "account_number",
    "phonenumber",
    "phone_number",
    "birthdate",
    "birth_date",
    "token",
    "access_token",
    "refresh_token",
  ],
);

function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return "[depth]";
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      out[key] = redactedKeys.has(key.toLowerCase()) ? "[redacted]" : redact(inner, depth + 1);
    }
    return out;
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

/** Where log lines go; tests swap it to capture lines and prove nothing sensitive is written. */
export type LogSink = (line: string, level: LogLevel) => void;

// deno-lint-ignore no-console
const consoleSink: LogSink = (line, level) => (level === "error" ? console.error(line) : console.log(line));
let sink: LogSink = consoleSink;

/** Replaces the sink and returns a function restoring the previous one. */
export function setLogSink(next: LogSink): () => void {
  const previous = sink;
  sink = next;
  return () => {
    sink = previous;
  };
}

export function log(level: LogLevel, event: string, fields: LogFields = {}): void {
  const line = JSON.stringify({
    level,
    event,
    time: new Date().toISOString(),
    ...(redact(fields) as LogFields),
  });
  sink(line, level);
}
