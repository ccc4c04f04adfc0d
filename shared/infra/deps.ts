// The only file that names third-party packages. Every specifier is a fully qualified, exactly pinned
// `npm:` specifier because the Supabase bundler never reads the root deno.json import map and JSR is
// unreachable from our build environment.
export { default as postgres } from "npm:postgres@3.4.9";
export type { Sql, TransactionSql } from "npm:postgres@3.4.9";
export { z } from "./deps-client.ts";
export {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWSHeaderParameters,
  type JWTPayload,
  jwtVerify,
} from "npm:jose@6.2.18";
// The PortOne SDK by subpath: its root module loads every API group (platform, B2B, …), 90–180 ms at each
// cold start against 20–40 ms for `/payment`; we call payments, billing keys, identity verification, webhooks.
export { PaymentClient, PaymentError } from "npm:@portone/server-sdk@0.19.0/payment";
export { BillingKeyError } from "npm:@portone/server-sdk@0.19.0/payment/billingKey";
export {
  IdentityVerificationClient,
  IdentityVerificationError,
} from "npm:@portone/server-sdk@0.19.0/identityVerification";
export * as PortOneWebhook from "npm:@portone/server-sdk@0.19.0/webhook";
export type * as PortOnePayment from "npm:@portone/server-sdk@0.19.0/payment";
export type * as PortOneBillingKey from "npm:@portone/server-sdk@0.19.0/payment/billingKey";
export type * as PortOneIdentityVerification from "npm:@portone/server-sdk@0.19.0/identityVerification";
export type * as PortOneCommon from "npm:@portone/server-sdk@0.19.0/common";
