import { billingKeyHandler } from "../../../shared/billing-key.ts";
import { runtimeDeps } from "../../../shared/runtime.ts";

export default billingKeyHandler(runtimeDeps());
