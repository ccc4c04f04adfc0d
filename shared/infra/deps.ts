// The only file that names third-party packages. Every specifier is a fully qualified, exactly pinned
// `npm:` specifier because the Supabase bundler never reads the root deno.json import map and JSR is
// unreachable from our build environment.
//
// Cold start: every import here is paid by every function at boot, so each package comes in by the subpaths
// we call (a package's root module loads all of it), and what only some requests need is loaded on first use
// by a dynamic import, pinned here like the static ones (the lint rule that wants import-map names instead
// is silenced for them: the bundler never reads an import map).
export { default as postgres } from "npm:postgres@3.4.9";
export type { Sql, TransactionSql } from "npm:postgres@3.4.9";
export { z } from "./deps-client.ts";
// jose by subpath (verifying a JWT against a local key set, not signing, encryption or key generation),
// loaded by the first access-token check: webhook and reconcile never make one.
let jose: ReturnType<typeof importJose> | undefined;
const importJose = async () => {
  const [verify, keySet, header, errors] = await Promise.all([
    // deno-lint-ignore no-import-prefix
    import("npm:jose@6.2.18/jwt/verify"),
    // deno-lint-ignore no-import-prefix
    import("npm:jose@6.2.18/jwks/local"),
    // deno-lint-ignore no-import-prefix
    import("npm:jose@6.2.18/decode/protected_header"),
    // deno-lint-ignore no-import-prefix
    import("npm:jose@6.2.18/errors"),
  ]);
  return {
    jwtVerify: verify.jwtVerify,
    createLocalJWKSet: keySet.createLocalJWKSet,
    decodeProtectedHeader: header.decodeProtectedHeader,
    errors,
  };
};
export const loadJose = () =>
  jose ??= importJose().catch((error) => {
    jose = undefined; // a failed load (never expected) is tried again by the next token
    throw error;
  });
export type Jose = Awaited<ReturnType<typeof importJose>>;
export type { JWSHeaderParameters, JWTPayload } from "npm:jose@6.2.18";
// The PortOne SDK by subpath: its root module loads every API group (platform, B2B, …), 90–180 ms at each
// cold start against 20–40 ms for `/payment`; we call payments, billing keys, identity verification, webhooks.
// Neither the API clients (≈15 ms and 4 MiB) nor the webhook module (5–15 ms and 2 MiB) is loaded at boot:
// shared/portone/gateway.ts loads each at its first use. (The lint rule wants import-map names,
// which the bundler never reads; these dynamic imports are pinned here like the static ones.)
// deno-lint-ignore no-import-prefix
export const loadPortOneWebhook = () => import("npm:@portone/server-sdk@0.19.0/webhook");
export type * as PortOneWebhook from "npm:@portone/server-sdk@0.19.0/webhook";
export const loadPortOneClients = async () => {
  const [payment, billingKey, identityVerification] = await Promise.all([
    // deno-lint-ignore no-import-prefix
    import("npm:@portone/server-sdk@0.19.0/payment"),
    // deno-lint-ignore no-import-prefix
    import("npm:@portone/server-sdk@0.19.0/payment/billingKey"),
    // deno-lint-ignore no-import-prefix
    import("npm:@portone/server-sdk@0.19.0/identityVerification"),
  ]);
  return {
    PaymentClient: payment.PaymentClient,
    PaymentError: payment.PaymentError,
    BillingKeyError: billingKey.BillingKeyError,
    IdentityVerificationClient: identityVerification.IdentityVerificationClient,
    IdentityVerificationError: identityVerification.IdentityVerificationError,
  };
};
export type * as PortOnePayment from "npm:@portone/server-sdk@0.19.0/payment";
export type * as PortOneBillingKey from "npm:@portone/server-sdk@0.19.0/payment/billingKey";
export type * as PortOneIdentityVerification from "npm:@portone/server-sdk@0.19.0/identityVerification";
export type * as PortOneCommon from "npm:@portone/server-sdk@0.19.0/common";
