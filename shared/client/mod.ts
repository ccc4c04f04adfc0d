/**
 * What apps import: the typed client, the request/response types and the error codes of our functions.
 * Browser-safe (see payments.ts); the database types come from shared/infra/database.types.ts.
 */
export {
  type CallError,
  type CallOptions,
  type CallResult,
  createPaymentsClient,
  errorCodesOf,
  type FunctionsInvoker,
  type PaymentsClient,
  type TransportErrorCode,
} from "./payments.ts";
export {
  type ErrorCodeOf,
  type OperationName,
  operations,
  type RequestOf,
  type ResponseOf,
} from "../contract/operations.ts";
export type { Database, Json, Row } from "../infra/rows.ts";
