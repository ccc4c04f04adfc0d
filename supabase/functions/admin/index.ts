import { adminHandler } from "../../../shared/operate/handler.ts";
import { runtimeDeps } from "../../../shared/infra/runtime.ts";

export default adminHandler(runtimeDeps());
