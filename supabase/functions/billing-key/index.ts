import { notImplemented } from "../../../shared/http.ts";

export default notImplemented("billing-key", ["GET", "POST", "DELETE"]);
