import { billingKeyHandler } from "../../../shared/billing/billing-key.ts";
import { runtimeDeps } from "../../../shared/infra/runtime.ts";

export default billingKeyHandler(runtimeDeps());
