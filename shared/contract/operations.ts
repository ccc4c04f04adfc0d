/**
 * Every operation of our functions in one table: the edge function and route it lives at, its request and
 * response schemas and the error codes it can answer. The typed client (shared/client/) and the
 * machine-readable description (openapi.ts → functions.openapi.json) are both derived from this table, and
 * the feature modules validate requests with the same schemas.
 */
import type { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import { prepareErrors, PrepareRequest, PrepareResponse } from "./prepare.ts";
import { confirmErrors, ConfirmRequest, ConfirmResponse } from "./confirm.ts";
import { cancelErrors, CancelRequestWithRefundAccount, CancelResponse } from "./cancel.ts";
import {
  billingKeyErrors,
  BillingKeyList,
  BillingKeyView,
  BillingPaymentResponse,
  PayWithBillingKeyRequest,
  RegisterBillingKeyRequest,
} from "./billing-key.ts";
import {
  IdentityStatus,
  identityVerificationErrors,
  PrepareIdentityRequest,
  PrepareIdentityResponse,
  VerifyIdentityRequest,
} from "./identity-verification.ts";
import { reconcileErrors, ReconcileReport, ReconcileRequest } from "./reconcile.ts";
import { webhookErrors, WebhookRequest, WebhookResponse } from "./webhook.ts";

export interface Operation {
  /** The edge function (supabase/functions/<name>). */
  readonly fn: string;
  readonly method: "GET" | "POST" | "DELETE";
  /** Below /functions/v1/<fn>; `{billingKeyId}` is a path parameter. */
  readonly subPath: string;
  readonly summary: string;
  /** Who may call: a signed-in user, the scheduler (RECONCILE_SECRET) or PortOne (signature). */
  readonly auth: "user" | "reconcile_secret" | "portone_signature";
  readonly idempotencyKey: "none" | "optional" | "required";
  readonly request: z.ZodType | null;
  /** The body may be left out entirely (the request's defaults apply). */
  readonly optionalBody?: boolean;
  readonly response: z.ZodType;
  readonly errors: readonly ErrorCode[];
}

export const operations = {
  prepare: {
    fn: "prepare",
    method: "POST",
    subPath: "",
    summary: "Turn a pending order into a PortOne payment attempt (what PortOne.requestPayment needs)",
    auth: "user",
    idempotencyKey: "optional",
    request: PrepareRequest,
    response: PrepareResponse,
    errors: prepareErrors,
  },
  confirm: {
    fn: "confirm",
    method: "POST",
    subPath: "",
    summary: "After the payment window: re-fetch the payment from PortOne, verify it and apply it",
    auth: "user",
    idempotencyKey: "none",
    request: ConfirmRequest,
    response: ConfirmResponse,
    errors: confirmErrors,
  },
  cancel: {
    fn: "cancel",
    method: "POST",
    subPath: "",
    summary: "Refund a payment in full or in part (admins; customers when CUSTOMER_CANCEL_POLICY=allow)",
    auth: "user",
    idempotencyKey: "required",
    request: CancelRequestWithRefundAccount,
    response: CancelResponse,
    errors: cancelErrors,
  },
  registerBillingKey: {
    fn: "billing-key",
    method: "POST",
    subPath: "",
    summary: "Save a card: register a billing key issued by the browser SDK",
    auth: "user",
    idempotencyKey: "none",
    request: RegisterBillingKeyRequest,
    response: BillingKeyView,
    errors: billingKeyErrors,
  },
  listBillingKeys: {
    fn: "billing-key",
    method: "GET",
    subPath: "",
    summary: "The caller's saved cards (masked)",
    auth: "user",
    idempotencyKey: "none",
    request: null,
    response: BillingKeyList,
    errors: billingKeyErrors,
  },
  payWithBillingKey: {
    fn: "billing-key",
    method: "POST",
    subPath: "/{billingKeyId}/pay",
    summary: "Charge one of the caller's pending orders with a saved card",
    auth: "user",
    idempotencyKey: "required",
    request: PayWithBillingKeyRequest,
    response: BillingPaymentResponse,
    errors: billingKeyErrors,
  },
  deleteBillingKey: {
    fn: "billing-key",
    method: "DELETE",
    subPath: "/{billingKeyId}",
    summary: "Delete a saved card (at PortOne too)",
    auth: "user",
    idempotencyKey: "none",
    request: null,
    response: BillingKeyView,
    errors: billingKeyErrors,
  },
  prepareIdentity: {
    fn: "identity-verification",
    method: "POST",
    subPath: "/prepare",
    summary: "Issue an identityVerificationId for the browser SDK's requestIdentityVerification",
    auth: "user",
    idempotencyKey: "none",
    request: PrepareIdentityRequest,
    response: PrepareIdentityResponse,
    errors: identityVerificationErrors,
  },
  verifyIdentity: {
    fn: "identity-verification",
    method: "POST",
    subPath: "",
    summary: "Link a completed Danal identity verification to the caller",
    auth: "user",
    idempotencyKey: "none",
    request: VerifyIdentityRequest,
    response: IdentityStatus,
    errors: identityVerificationErrors,
  },
  identityStatus: {
    fn: "identity-verification",
    method: "GET",
    subPath: "",
    summary: "Whether the caller is verified (masked name, operator)",
    auth: "user",
    idempotencyKey: "none",
    request: null,
    response: IdentityStatus,
    errors: identityVerificationErrors,
  },
  reconcile: {
    fn: "reconcile",
    method: "POST",
    subPath: "",
    summary: "Heal what webhooks and browsers left behind (for a scheduler)",
    auth: "reconcile_secret",
    idempotencyKey: "none",
    request: ReconcileRequest,
    optionalBody: true,
    response: ReconcileReport,
    errors: reconcileErrors,
  },
  webhook: {
    fn: "webhook",
    method: "POST",
    subPath: "",
    summary: "PortOne's signed webhook (version 2024-04-25)",
    auth: "portone_signature",
    idempotencyKey: "none",
    request: WebhookRequest,
    response: WebhookResponse,
    errors: webhookErrors,
  },
} as const satisfies Record<string, Operation>;

export type Operations = typeof operations;
export type OperationName = keyof Operations;
/** What the operation's request body must be (`undefined`: it has none). */
export type RequestOf<N extends OperationName> = Operations[N]["request"] extends z.ZodType
  ? z.input<Operations[N]["request"]>
  : undefined;
export type ResponseOf<N extends OperationName> = z.output<Operations[N]["response"]>;
export type ErrorCodeOf<N extends OperationName> = Operations[N]["errors"][number];
