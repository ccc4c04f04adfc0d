import { runtimeDeps } from "../../../shared/runtime.ts";
import { webhookHandler } from "../../../shared/webhook.ts";

export default webhookHandler(runtimeDeps(["webhook"]));
