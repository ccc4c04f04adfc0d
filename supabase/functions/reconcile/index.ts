import { notImplemented } from "../../../shared/http.ts";

export default notImplemented("reconcile", ["POST"]);
