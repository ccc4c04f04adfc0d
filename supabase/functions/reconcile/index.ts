import { reconcileHandler } from "../../../shared/payments/reconcile.ts";
import { runtimeDeps } from "../../../shared/infra/runtime.ts";

export default reconcileHandler(runtimeDeps(["reconcile"]));
