import { prepareHandler } from "../../../shared/handlers.ts";
import { runtimeDeps } from "../../../shared/runtime.ts";

export default prepareHandler(runtimeDeps());
