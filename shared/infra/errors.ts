/**
 * The error catalogue: every stable code a client can see, with its HTTP status. Clients branch on `code`;
 * `message` is for humans and never carries internals.
 */
export const errorStatus = {
  invalid_request: 400,
  invalid_json: 400,
  invalid_signature: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  refund_account_required: 400,
  invalid_refund_account: 400,
  payment_declined: 402,
  idempotency_key_reused: 422,
  request_in_progress: 409,
  webhook_in_progress: 409,
  order_not_payable: 409,
  payment_in_progress: 409,
  payment_mismatch: 409,
  payment_not_cancellable: 409,
  cancel_amount_exceeds_cancellable: 409,
  cancel_in_progress: 409,
  payment_out_of_sync: 409,
  billing_key_not_active: 409,
  identity_not_verified: 409,
  identity_already_linked: 409,
  internal: 500,
  misconfigured: 500,
  portone_error: 502,
  portone_unavailable: 503,
  auth_unavailable: 503,
  database_unavailable: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof errorStatus;

/** An error that ends the request with a stable code; thrown anywhere, turned into a response in shared/infra/http.ts. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra, client-safe fields for the error body (e.g. which field failed validation). */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.status = errorStatus[code];
    this.details = options?.details;
  }
}
