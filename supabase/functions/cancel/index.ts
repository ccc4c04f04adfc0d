import { cancelHandler } from "../../../shared/payments/cancel.ts";
import { runtimeDeps } from "../../../shared/infra/runtime.ts";

export default cancelHandler(runtimeDeps());
