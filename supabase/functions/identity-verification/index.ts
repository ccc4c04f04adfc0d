import { identityVerificationHandler } from "../../../shared/identity/identity-verification.ts";
import { runtimeDeps } from "../../../shared/infra/runtime.ts";

export default identityVerificationHandler(runtimeDeps(["identity", "encryption"]));
