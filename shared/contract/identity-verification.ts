/** The `identity-verification` function's contract: POST { identityVerificationId } · GET. */
import { z } from "../infra/deps-client.ts";
import type { ErrorCode } from "../infra/errors.ts";
import { portoneErrors, timestamp, userAuthErrors, wrapperErrors } from "./common.ts";

/** Ids are chosen by our frontend; this refuses what cannot be one (and keeps the PortOne path sane). */
export const VerifyIdentityRequest = z.strictObject({
  identityVerificationId: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, "must be an identityVerificationId"),
});
export type VerifyIdentityRequest = z.infer<typeof VerifyIdentityRequest>;

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
