/**
 * `deno task env [--admin] [user-uuid]`: shell `export` lines for the running `deno task dev` stack, so a
 * second terminal can call it: `eval "$(deno task -q env)"`. SUPABASE_URL and ANON_KEY (also printed by
 * `deno task dev`), TOKEN (`deno task token`'s access token for the same user), USER_ID,
 * RECONCILE_SECRET (random per run unless the stack was started with RECONCILE_SECRET set) and the
 * sandbox's SANDBOX_CONTROL_URL (where its customer simulation completes payments).
 */
import { defaultStateFile } from "./keys.ts";
import type { StackState } from "./stack.ts";

const fail = (message: string): never => {
  Deno.stderr.writeSync(new TextEncoder().encode(`error: ${message}\n`));
  Deno.exit(1);
};

const stateFile = Deno.env.get("DEVSTACK_STATE_FILE") ?? defaultStateFile;
let state: StackState;
try {
  state = JSON.parse(await Deno.readTextFile(stateFile)) as StackState;
} catch {
  fail(`no running stack (${stateFile} is missing): start it with \`deno task dev\``);
}
const tokenScript = new URL("./token.ts", import.meta.url).pathname;
const token = await new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-all", tokenScript, ...Deno.args],
  stdout: "piped",
  stderr: "inherit",
}).output();
if (!token.success) Deno.exit(token.code);
const accessToken = new TextDecoder().decode(token.stdout).trim();
const userId = JSON.parse(atob(accessToken.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/"))).sub;

const quote = (value: string) => `'${value.replaceAll("'", "'\\''")}'`;
const variables: Record<string, string> = {
  SUPABASE_URL: state!.supabaseUrl,
  ANON_KEY: state!.anonKey,
  TOKEN: accessToken,
  USER_ID: userId,
  RECONCILE_SECRET: state!.reconcileSecret,
  ...(state!.sandbox ? { SANDBOX_CONTROL_URL: state!.sandbox.controlUrl } : {}),
};
Deno.stdout.writeSync(
  new TextEncoder().encode(
    Object.entries(variables).map(([name, value]) => `export ${name}=${quote(value)}\n`).join(""),
  ),
);
