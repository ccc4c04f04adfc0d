import { confirmHandler } from "../../../shared/handlers.ts";
import { runtimeDeps } from "../../../shared/runtime.ts";

export default confirmHandler(runtimeDeps());
