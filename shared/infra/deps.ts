// The only file that names third-party packages. Every specifier is a fully qualified, exactly pinned
// `npm:` specifier because the Supabase bundler never reads the root deno.json import map and JSR is
// unreachable from our build environment.
export { default as postgres } from "npm:postgres@3.4.9";
export type { Sql, TransactionSql } from "npm:postgres@3.4.9";
export { z } from "npm:zod@4.6.7";
export {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWSHeaderParameters,
  type JWTPayload,
  jwtVerify,
} from "npm:jose@6.2.18";
export * as PortOne from "npm:@portone/server-sdk@0.19.0";
export type * as PortOnePayment from "npm:@portone/server-sdk@0.19.0/payment";
export type * as PortOneBillingKey from "npm:@portone/server-sdk@0.19.0/payment/billingKey";
export type * as PortOneIdentityVerification from "npm:@portone/server-sdk@0.19.0/identityVerification";
export type * as PortOneCommon from "npm:@portone/server-sdk@0.19.0/common";
