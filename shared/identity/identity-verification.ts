/**
 * `identity-verification`: after the browser SDK completes a Danal identity verification, we fetch it from
 * PortOne (never trusting the browser), require VERIFIED, and link the person to the caller's account.
 *
 * One person, one account: the CI (a person's stable identifier across services) is stored only as an
 * HMAC-SHA256 under IDENTITY_CI_PEPPER, in a UNIQUE column, so the same person verifying on a second
 * account is refused without the raw CI ever being stored or logged. A keyed hash rather than a plain one
 * because CIs are drawn from a known format: without the pepper, a leaked table could be matched against
 * CIs obtained elsewhere. DI and the personal details are kept for the service only (no column grants);
 * clients get the masked name, the carrier and the verification time.
 */
import { hmacSha256Hex } from "../infra/crypto.ts";
import { z } from "../infra/deps.ts";
import { type IdentityStatus, VerifyIdentityRequest } from "../contract/identity-verification.ts";
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import { log } from "../infra/log.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { defineFunction, type EdgeFunction, json, readJson } from "../infra/http.ts";

const operators = ["SKT", "KT", "LGU", "SKT_MVNO", "KT_MVNO", "LGU_MVNO"] as const;
const genders = ["MALE", "FEMALE", "OTHER"] as const;

/** PortOne's answer, validated (the SDK returns it unchecked); loose because PortOne adds fields. */
const verificationSchema = z.looseObject({
  status: z.string(),
  verifiedAt: z.iso.datetime({ offset: true }).optional(),
  verifiedCustomer: z.looseObject({
    id: z.string().optional(),
    name: z.string().optional(),
    ci: z.string().optional(),
    di: z.string().optional(),
    birthDate: z.string().optional(),
    gender: z.string().optional(),
    phoneNumber: z.string().optional(),
    operator: z.string().optional(),
    isForeigner: z.boolean().optional(),
  }).optional(),
});

/** Keeps the first and last character: 홍길동 → 홍*동, 김수 → 김*, John Smith → J********h. */
export function maskName(name: string): string {
  const chars = Array.from(name.trim());
  if (chars.length <= 1) return "*";
  if (chars.length === 2) return `${chars[0]}*`;
  return `${chars[0]}${"*".repeat(chars.length - 2)}${chars[chars.length - 1]}`;
}

/** HMAC-SHA256(pepper, CI) as lowercase hex; the only form in which a CI is ever stored. */
export function hashCi(pepper: string, ci: string): Promise<string> {
  return hmacSha256Hex(pepper, ci);
}

function oneOf<T extends string>(values: readonly T[], value: string | undefined): T | null {
  return value !== undefined && (values as readonly string[]).includes(value) ? value as T : null;
}

interface StatusRow {
  name_masked: string;
  operator: string | null;
  is_foreigner: boolean | null;
  verified_at: Date;
}

function toStatus(row: StatusRow | undefined): IdentityStatus {
  if (!row) return { verified: false };
  return {
    verified: true,
    nameMasked: row.name_masked,
    operator: row.operator,
    isForeigner: row.is_foreigner,
    verifiedAt: row.verified_at.toISOString(),
  };
}

/** Unique violations that mean "this person (or this very verification) already belongs to another account". */
const linkedElsewhere = new Set([
  "identity_verifications_ci_hash_key",
  "identity_verifications_portone_identity_verification_id_key",
]);

export async function verifyIdentity(
  deps: AppDeps,
  caller: Caller,
  input: VerifyIdentityRequest,
): Promise<IdentityStatus> {
  const pepper = deps.config.identityCiPepper;
  if (!pepper) throw new AppError("misconfigured", "Identity verification is not configured");

  let raw: unknown;
  try {
    raw = await deps.portone.getIdentityVerification(input.identityVerificationId);
  } catch (error) {
    // we always ask with our storeId, so another store's verification is "not found" too
    if (error instanceof PortOneRefusal && error.type === "IDENTITY_VERIFICATION_NOT_FOUND") {
      throw new AppError("not_found", "Identity verification not found");
    }
    if (error instanceof PortOneRefusal) {
      throw new AppError("portone_error", "PortOne refused the identity verification lookup", {
        cause: error,
      });
    }
    throw error;
  }
  const verification = verificationSchema.parse(raw);
  const customer = verification.verifiedCustomer;
  if (verification.status !== "VERIFIED" || !customer || !verification.verifiedAt) {
    throw new AppError("identity_not_verified", `The identity verification is ${verification.status}`);
  }
  // the frontend passes customer.id = the user id when it has one; a verification made for another account
  // must not be claimed by replaying its id
  if (customer.id !== undefined && customer.id !== caller.userId) {
    throw new AppError("forbidden", "This identity verification was made for another account");
  }
  const name = customer.name?.trim() ?? "";
  // without a CI, "one person, one account" cannot be enforced (Danal always sends one)
  if (!customer.ci || name.length === 0 || Array.from(name).length > 100) {
    throw new AppError("identity_not_verified", "The identity verification lacks the required identity data");
  }

  const ciHash = await hashCi(pepper, customer.ci);
  const phone = customer.phoneNumber?.replace(/[^0-9]/g, "") ?? "";
  const birthDate = customer.birthDate && /^\d{4}-\d{2}-\d{2}$/.test(customer.birthDate)
    ? customer.birthDate
    : null;

  let rows: StatusRow[];
  try {
    // Re-verifying as the same person updates the account's row (idempotent for a replayed id); the
    // `where` refuses to swap an account's verified person, and the ci_hash UNIQUE constraint refuses a
    // person already linked to another account.
    rows = await deps.sql<StatusRow[]>`
      insert into public.identity_verifications
        (user_id, portone_identity_verification_id, store_id, ci_hash, di, name, name_masked, birth_date,
         gender, phone_number, operator, is_foreigner, verified_at)
      values
        (${caller.userId}, ${input.identityVerificationId}, ${deps.config.portone.storeId}, ${ciHash},
         ${customer.di ?? null}, ${name}, ${maskName(name)}, ${birthDate}, ${oneOf(genders, customer.gender)},
         ${/^[0-9]{9,15}$/.test(phone) ? phone : null}, ${oneOf(operators, customer.operator)},
         ${customer.isForeigner ?? null}, ${verification.verifiedAt})
      on conflict (user_id) do update set
        portone_identity_verification_id = excluded.portone_identity_verification_id,
        store_id = excluded.store_id, di = excluded.di, name = excluded.name, name_masked = excluded.name_masked,
        birth_date = excluded.birth_date, gender = excluded.gender, phone_number = excluded.phone_number,
        operator = excluded.operator, is_foreigner = excluded.is_foreigner, verified_at = excluded.verified_at,
        updated_at = now()
      where identity_verifications.ci_hash = excluded.ci_hash
      returning name_masked, operator, is_foreigner, verified_at`;
  } catch (error) {
    const constraint = error as { code?: unknown; constraint_name?: unknown };
    if (constraint.code === "23505" && linkedElsewhere.has(String(constraint.constraint_name))) {
      throw new AppError("identity_already_linked", "This person is already verified on another account");
    }
    throw error;
  }
  if (rows.length === 0) {
    throw new AppError("identity_already_linked", "This account is already verified as another person");
  }
  log("info", "identity_verified", { userId: caller.userId, operator: rows[0]!.operator });
  return toStatus(rows[0]);
}

export async function identityStatus(deps: AppDeps, caller: Caller): Promise<IdentityStatus> {
  const [row] = await deps.sql<StatusRow[]>`
    select name_masked, operator, is_foreigner, verified_at from public.identity_verifications
    where user_id = ${caller.userId}`;
  return toStatus(row);
}

/** The `identity-verification` function: POST { identityVerificationId } verifies, GET reads the status. */
export function identityVerificationHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "identity-verification",
    methods: ["GET", "POST"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ request, url, caller }) => {
      // the function has no sub-resources; the platform passes the full `/functions/v1/...` path
      if (!/(?:^|\/)identity-verification\/?$/.test(url.pathname)) {
        throw new AppError("not_found", "No such route");
      }
      return request.method === "GET"
        ? json(await identityStatus(deps, caller))
        : json(await verifyIdentity(deps, caller, await readJson(request, VerifyIdentityRequest)));
    },
  });
}
