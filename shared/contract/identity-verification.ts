/** The `identity-verification` function's contract: POST /prepare {} · POST { identityVerificationId } · GET. */
import { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import { portoneErrors, timestamp, userAuthErrors, wrapperErrors } from "./common.ts";

/** Ids are issued by `POST /identity-verification/prepare`; anything else cannot be one of ours. */
export const VerifyIdentityRequest = z.strictObject({
  identityVerificationId: z.string().regex(
    /^idv_[0-9a-f]{32}$/,
    "must be an identityVerificationId we issued",
  ),
});
export type VerifyIdentityRequest = z.infer<typeof VerifyIdentityRequest>;

export const PrepareIdentityRequest = z.strictObject({});

/** What the browser SDK's `requestIdentityVerification` needs besides its channel key. */
export const PrepareIdentityResponse = z.strictObject({
  identityVerificationId: z.string(),
  storeId: z.string(),
  customer: z.strictObject({ customerId: z.string() }),
});
export type PrepareIdentityResponse = z.infer<typeof PrepareIdentityResponse>;

export const IdentityStatus = z.discriminatedUnion("verified", [
  z.strictObject({ verified: z.literal(false) }),
  z.strictObject({
    verified: z.literal(true),
    nameMasked: z.string(),
    operator: z.string().nullable(),
    isForeigner: z.boolean().nullable(),
    verifiedAt: timestamp,
  }),
]);
export type IdentityStatus = z.infer<typeof IdentityStatus>;

export const identityVerificationErrors = [
  ...wrapperErrors,
  ...userAuthErrors,
  ...portoneErrors,
  "forbidden",
  "not_found",
  "misconfigured",
  "identity_not_verified",
  "identity_already_linked",
] as const satisfies readonly ErrorCode[];
