/**
 * `identity-verification`: the server issues the identityVerificationId for a signed-in user (as `prepare`
 * does for payments); after the browser SDK completes the Danal verification under that id, we fetch it from
 * PortOne (never trusting the browser), require VERIFIED, recent, and made for this very user, and link the
 * person to the caller's account. Only the user an id was issued to can complete it: an id leaked through a
 * redirect URL, history or Referer claims nobody.
 *
 * One person, one account: the CI (a person's stable identifier across services) is stored only as an
 * HMAC-SHA256 under IDENTITY_CI_PEPPER, in a UNIQUE column, so the same person verifying on a second
 * account is refused without the raw CI ever being stored or logged. A keyed hash rather than a plain one
 * because CIs are drawn from a known format: without the pepper, a leaked table could be matched against
 * CIs obtained elsewhere. DI and the personal details are kept only sealed (AES-256-GCM under
 * DATA_ENCRYPTION_KEYS) in `personal_data`, which no API role may select; clients get the masked name, the
 * carrier and the verification time.
 */
import { hmacSha256Hex } from "../infra/crypto.ts";
import { seal } from "../infra/encryption.ts";
import { z } from "../infra/deps.ts";
import { responseSchema } from "../portone/response-schema.ts";
import {
  type IdentityStatus,
  PrepareIdentityRequest,
  type PrepareIdentityResponse,
  VerifyIdentityRequest,
} from "../contract/identity-verification.ts";
import { AppError } from "../infra/errors.ts";
import type { Caller } from "../infra/auth.ts";
import { log } from "../infra/log.ts";
import { PortOneRefusal } from "../portone/gateway.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { defineFunction, type EdgeFunction, json, readJson } from "../infra/http.ts";
import type { SqlRow } from "../infra/rows.ts";

const operators = ["SKT", "KT", "LGU", "SKT_MVNO", "KT_MVNO", "LGU_MVNO"] as const;
const genders = ["MALE", "FEMALE", "OTHER"] as const;

/** PortOne's answer, validated (the SDK returns it unchecked); loose because PortOne adds fields. */
const verificationSchema = responseSchema(() =>
  z.looseObject({
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
  })
);

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

type StatusRow = Pick<
  SqlRow<"identity_verifications", "verified_at">,
  "name_masked" | "operator" | "is_foreigner" | "verified_at"
>;

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

/** How many issued ids a user keeps; older ones are dropped when a new one is issued. */
const keptRequestsPerUser = 10;

export async function prepareIdentityVerification(
  deps: AppDeps,
  caller: Caller,
): Promise<PrepareIdentityResponse> {
  // 128 random bits: nobody can guess an id issued to someone else
  const id = `idv_${
    [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("")
  }`;
  await deps.sql.begin(async (tx) => {
    await tx`
      insert into public.identity_verification_requests (id, user_id, store_id)
      values (${id}, ${caller.userId}, ${deps.config.portone.storeId})`;
    await tx`
      delete from public.identity_verification_requests
      where user_id = ${caller.userId} and id not in (
        select id from public.identity_verification_requests where user_id = ${caller.userId}
        order by created_at desc, id limit ${keptRequestsPerUser})`;
  });
  return {
    identityVerificationId: id,
    storeId: deps.config.portone.storeId,
    customer: { customerId: caller.userId },
  };
}

export async function verifyIdentity(
  deps: AppDeps,
  caller: Caller,
  input: VerifyIdentityRequest,
): Promise<IdentityStatus> {
  const pepper = deps.config.identityCiPepper;
  const dataKeys = deps.config.dataEncryptionKeys;
  if (!pepper || !dataKeys) throw new AppError("misconfigured", "Identity verification is not configured");

  // an id issued to someone else and an unknown one look the same, and cost PortOne nothing
  const [issued] = await deps.sql`
    select 1 from public.identity_verification_requests
    where id = ${input.identityVerificationId} and user_id = ${caller.userId}
      and store_id = ${deps.config.portone.storeId}`;
  if (!issued) throw new AppError("not_found", "Identity verification not found");

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
  // the frontend passes customer.id = the user id; PortOne naming anyone else means it is not the caller's
  if (customer.id !== undefined && customer.id !== caller.userId) {
    throw new AppError("not_found", "Identity verification not found");
  }
  const ageSeconds = (Date.now() - Date.parse(verification.verifiedAt)) / 1000;
  if (ageSeconds > deps.config.identityVerificationMaxAgeSeconds) {
    throw new AppError("identity_not_verified", "The identity verification is too old; verify again");
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

  const personalData = await seal(
    dataKeys,
    JSON.stringify({
      di: customer.di ?? null,
      name,
      birthDate,
      gender: oneOf(genders, customer.gender),
      phoneNumber: /^[0-9]{9,15}$/.test(phone) ? phone : null,
    }),
    `identity_verifications.personal_data:${caller.userId}`,
  );

  let rows: StatusRow[];
  try {
    // Re-verifying as the same person updates the account's row (idempotent for a replayed id); the
    // `where` refuses to swap an account's verified person, and the ci_hash UNIQUE constraint refuses a
    // person already linked to another account.
    rows = await deps.sql<StatusRow[]>`
      insert into public.identity_verifications
        (user_id, portone_identity_verification_id, store_id, ci_hash, personal_data, name_masked, operator,
         is_foreigner, verified_at)
      values
        (${caller.userId}, ${input.identityVerificationId}, ${deps.config.portone.storeId}, ${ciHash},
         ${personalData}, ${maskName(name)}, ${oneOf(operators, customer.operator)},
         ${customer.isForeigner ?? null}, ${verification.verifiedAt})
      on conflict (user_id) do update set
        portone_identity_verification_id = excluded.portone_identity_verification_id,
        store_id = excluded.store_id, personal_data = excluded.personal_data, name_masked = excluded.name_masked,
        -- plain copies written before encryption at rest are dropped
        di = null, name = null, birth_date = null, gender = null, phone_number = null,
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

/**
 * The `identity-verification` function: POST /prepare {} issues an id, POST { identityVerificationId }
 * verifies, GET reads the status.
 */
export function identityVerificationHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "identity-verification",
    methods: ["GET", "POST"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ request, url, caller }) => {
      // the platform passes the full `/functions/v1/...` path
      const route = /(?:^|\/)identity-verification(\/prepare)?\/?$/.exec(url.pathname);
      if (!route) throw new AppError("not_found", "No such route");
      if (route[1] !== undefined) {
        if (request.method !== "POST") {
          throw new AppError("method_not_allowed", `Method ${request.method} is not allowed here`);
        }
        await readJson(request, PrepareIdentityRequest);
        return json(await prepareIdentityVerification(deps, caller));
      }
      return request.method === "GET"
        ? json(await identityStatus(deps, caller))
        : json(await verifyIdentity(deps, caller, await readJson(request, VerifyIdentityRequest)));
    },
  });
}
