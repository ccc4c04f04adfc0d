import { notImplemented } from "../../../shared/http.ts";

export default notImplemented("identity-verification", ["GET", "POST"]);
