import { cancelHandler } from "../../../shared/cancel.ts";
import { runtimeDeps } from "../../../shared/runtime.ts";

export default cancelHandler(runtimeDeps());
