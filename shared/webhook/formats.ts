/**
 * The webhook body formats PortOne's console can be set to send, sorted into what `webhook.ts` does with
 * them: 2024-04-25 (`{ type, timestamp, data }`) and 2024-01-01 (`{ payment_id, tx_id, status }`) become
 * one event shape (both name what to re-fetch); a V1 (iamport) body is `unsupported_format`; a body we
 * cannot store or parse is `malformed`.
 */
import { findJsonInputProblem } from "../infra/input-text.ts";

export interface VerifiedEvent {
  readonly type: string;
  readonly data: Record<string, unknown>;
  /** 2024-01-01 bodies carry no storeId: the re-fetch (under our store) is the only check. */
  readonly format: "2024-04-25" | "2024-01-01";
}

/** Why a verified delivery could not be taken in; stored in `last_error`. */
export type MalformedReason =
  | "not_json"
  | "not_an_object"
  | "unstorable_text"
  | "too_deep"
  | "webhook_id_too_long";

/** A verified delivery, sorted: an event to process, or one we can only record. */
export type Delivery =
  | { readonly kind: "event"; readonly event: VerifiedEvent }
  | { readonly kind: "malformed"; readonly reason: MalformedReason }
  | { readonly kind: "unsupported_format"; readonly reason: "portone_v1" };

/** 2024-01-01 `status` values; each is the 2024-04-25 type `Transaction.<status>`. */
const legacyStatuses = new Set([
  "Ready",
  "Paid",
  "VirtualAccountIssued",
  "PartialCancelled",
  "Cancelled",
  "Failed",
  "PayPending",
  "CancelPending",
]);

/** The same text, cut to at most `max` code points (never inside a surrogate pair). */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : [...text].slice(0, max).join("");
}

/** Sorts a verified body by format; anything we could not store or would only guess at is not an event. */
export function classify(body: unknown): Delivery {
  const problem = findJsonInputProblem(body);
  if (problem) return { kind: "malformed", reason: problem.reason };
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { kind: "malformed", reason: "not_an_object" };
  }
  const fields = body as Record<string, unknown>;
  if (typeof fields.type === "string") {
    const data = fields.data !== null && typeof fields.data === "object" && !Array.isArray(fields.data)
      ? fields.data as Record<string, unknown>
      : {};
    return { kind: "event", event: { type: fields.type, data, format: "2024-04-25" } };
  }
  if (typeof fields.payment_id === "string") {
    const status = typeof fields.status === "string" ? fields.status : "";
    return {
      kind: "event",
      event: {
        type: legacyStatuses.has(status) ? `Transaction.${status}` : "Transaction.Unknown",
        data: { paymentId: fields.payment_id, transactionId: fields.tx_id },
        format: "2024-01-01",
      },
    };
  }
  if ("imp_uid" in fields || "merchant_uid" in fields) {
    return { kind: "unsupported_format", reason: "portone_v1" };
  }
  return { kind: "event", event: { type: "", data: {}, format: "2024-04-25" } };
}
