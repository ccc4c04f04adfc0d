import { reconcileHandler } from "../../../shared/reconcile.ts";
import { runtimeDeps } from "../../../shared/runtime.ts";

export default reconcileHandler(runtimeDeps(["reconcile"]));
