import { identityVerificationHandler } from "../../../shared/identity-verification.ts";
import { runtimeDeps } from "../../../shared/runtime.ts";

export default identityVerificationHandler(runtimeDeps(["identity"]));
