import { prepareHandler } from "../../../shared/payments/prepare.ts";
import { runtimeDeps } from "../../../shared/infra/runtime.ts";

export default prepareHandler(runtimeDeps());
