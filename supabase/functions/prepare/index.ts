import { prepareHandler } from "../../../shared/prepare.ts";
import { runtimeDeps } from "../../../shared/runtime.ts";

export default prepareHandler(runtimeDeps());
