import { confirmHandler } from "../../../shared/payments/confirm.ts";
import { runtimeDeps } from "../../../shared/infra/runtime.ts";

export default confirmHandler(runtimeDeps());
