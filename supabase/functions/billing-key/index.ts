import { billingKeyHandler } from "../../../shared/billing/handler.ts";
import { runtimeDeps } from "../../../shared/infra/runtime.ts";

export default billingKeyHandler(runtimeDeps(["encryption"]));
