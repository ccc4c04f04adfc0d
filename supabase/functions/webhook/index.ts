import { runtimeDeps } from "../../../shared/infra/runtime.ts";
import { webhookHandler } from "../../../shared/webhook/webhook.ts";

export default webhookHandler(runtimeDeps(["webhook"]));
