/** The `identity-verification` function's contract: POST { identityVerificationId } · GET. */
import { z } from "../infra/deps-client.ts";

/** Ids are chosen by our frontend; this refuses what cannot be one (and keeps the PortOne path sane). */
export const VerifyIdentityRequest = z.strictObject({
  identityVerificationId: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, "must be an identityVerificationId"),
});
export type VerifyIdentityRequest = z.infer<typeof VerifyIdentityRequest>;

export type IdentityStatus =
  | { readonly verified: false }
  | {
    readonly verified: true;
    readonly nameMasked: string;
    readonly operator: string | null;
    readonly isForeigner: boolean | null;
    readonly verifiedAt: string;
  };
