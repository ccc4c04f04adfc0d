import { confirmHandler } from "../../../shared/confirm.ts";
import { runtimeDeps } from "../../../shared/runtime.ts";

export default confirmHandler(runtimeDeps());
