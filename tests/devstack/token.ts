/**
 * `deno task token [--admin] [user-id]`: prints a dev access token for a user of the running `deno task dev`
 * stack, creating the user's `auth.users` row if needed. Without an id it uses one fixed dev user, so
 * repeated calls act as the same person; `--admin` makes a merchant admin (`app_metadata.payments_admin`),
 * who may cancel. The database comes from the stack's state file (or DEVSTACK_DATABASE_URL).
 */
import { postgres } from "../../shared/infra/deps.ts";
import { defaultDevUserId, defaultStateFile, loadDevKeys, userToken } from "./keys.ts";
import type { StackState } from "./stack.ts";
import { ensureUser } from "./users.ts";

const fail = (message: string): never => {
  Deno.stderr.writeSync(new TextEncoder().encode(`error: ${message}\n`));
  Deno.exit(1);
};

const admin = Deno.args.includes("--admin");
const userId = Deno.args.find((arg) => arg !== "--admin") ?? defaultDevUserId;
if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(userId)) {
  fail(`user id must be a UUID, got '${userId}'`);
}
const stateFile = Deno.env.get("DEVSTACK_STATE_FILE") ?? defaultStateFile;
let databaseUrl = Deno.env.get("DEVSTACK_DATABASE_URL");
if (!databaseUrl) {
  try {
    databaseUrl = (JSON.parse(await Deno.readTextFile(stateFile)) as StackState).databaseUrl;
  } catch {
    fail(`no running stack (${stateFile} is missing): start it with \`deno task dev\``);
  }
}
const sql = postgres(databaseUrl!, { max: 1, onnotice: () => {}, connect_timeout: 5 });
try {
  await ensureUser(sql, userId, { admin });
} catch (error) {
  fail(`could not create the user in ${databaseUrl}: ${error instanceof Error ? error.message : error}`);
} finally {
  await sql.end();
}
Deno.stdout.writeSync(
  new TextEncoder().encode(`${await userToken(await loadDevKeys(), userId, { admin })}\n`),
);
