// The packages that may also run in an app's browser bundle (shared/contract/, shared/client/): nothing
// here may pull in Deno-, Node- or server-only code. Pinned exactly like shared/infra/deps.ts, which
// re-exports them for server code.
export { z } from "npm:zod@4.6.7";
