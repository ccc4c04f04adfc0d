/**
 * The `webhook` function's contract, for the description only: PortOne calls it (Standard Webhooks
 * signature, version 2024-04-25; 2024-01-01 bodies `{ payment_id, tx_id, status }` are taken too), apps
 * never do. The body only names what to re-fetch from PortOne. A verified body we cannot parse or store is
 * answered `malformed`, a PortOne V1 body `unsupported_format` (both recorded, never processed).
 */
import { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import { wrapperErrors } from "./common.ts";

export const WebhookRequest = z.looseObject({
  type: z.string(),
  timestamp: z.string(),
  data: z.looseObject({}),
});

export const WebhookResponse = z.strictObject({
  received: z.literal(true),
  status: z.enum(["processed", "ignored", "duplicate", "malformed", "unsupported_format"]),
});
export type WebhookResponse = z.infer<typeof WebhookResponse>;

/** 400 only for a bad signature; 5xx so PortOne retries. */
export const webhookErrors = [
  ...wrapperErrors,
  "invalid_signature",
  "webhook_in_progress",
] as const satisfies readonly ErrorCode[];
