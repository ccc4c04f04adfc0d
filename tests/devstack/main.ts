/**
 * `deno task dev`: the local stack in the foreground. Prints where everything is and how to call it, and
 * stops everything it started (cluster stopped, state file removed) on Ctrl-C (SIGINT), SIGTERM, SIGHUP
 * or an uncaught error, also while it is still starting. What a SIGKILL leaves behind, the next start
 * removes.
 */
import { closeActiveStacks, startStack } from "./stack.ts";

const encoder = new TextEncoder();
const say = (line = "") => Deno.stdout.writeSync(encoder.encode(`${line}\n`));

let stopping = false;
/** Tears everything down once, then exits; a teardown that hangs is cut short after 10 s. */
const stop = (code: number, why: string) => {
  if (stopping) return;
  stopping = true;
  say(`stopping (${why})…`);
  const timer = setTimeout(() => Deno.exit(code || 1), 10_000);
  void closeActiveStacks().finally(() => {
    clearTimeout(timer);
    Deno.exit(code);
  });
};
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  Deno.addSignalListener(signal, () => stop(0, signal));
}
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  Deno.stderr.writeSync(encoder.encode(`uncaught error: ${event.error?.stack ?? event.message}\n`));
  stop(1, "uncaught error");
});
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  const reason = event.reason instanceof Error ? event.reason.stack : String(event.reason);
  Deno.stderr.writeSync(encoder.encode(`unhandled rejection: ${reason}\n`));
  stop(1, "unhandled rejection");
});

const stack = await startStack({ progress: (line) => say(`  ${line}`) }).catch((error) => {
  // a signal or crash during start-up is already tearing down; it exits when done
  if (stopping) return new Promise<never>(() => {});
  Deno.stderr.writeSync(encoder.encode(`error: ${error instanceof Error ? error.message : String(error)}\n`));
  Deno.exit(1);
});
const { state } = stack;

const fnLines = Object.entries(state.functions).map(([name, fn]) =>
  `  ${state.supabaseUrl}/functions/v1/${name}${fn.verifyJwt ? "" : "   (verify_jwt = false)"}${
    fn.loaded ? "" : `   FAILED TO LOAD: ${fn.error}`
  }`
);
say();
say(`Local payments stack ready in ${(state.readyMs / 1000).toFixed(1)}s`);
say();
say(`SUPABASE_URL      ${state.supabaseUrl}`);
say(`anon key          ${state.anonKey}`);
say(`JWKS              ${state.supabaseUrl}/auth/v1/.well-known/jwks.json`);
say(`demo checkout     ${state.supabaseUrl}/`);
say(
  `operations page   ${state.supabaseUrl}/demo/operations   (health, payments, timelines, webhooks, refunds)`,
);
say(
  `database          ${state.databaseUrl}   (${
    state.database === "cluster" ? "throwaway cluster, removed on exit" : "DATABASE_URL"
  })`,
);
say(`PostgreSQL        ${state.postgres ? state.postgres.description : "the server at DATABASE_URL"}`);
if (state.sandbox) {
  say(
    `PortOne sandbox   API ${state.sandbox.url}   control ${state.sandbox.controlUrl}   store ${state.sandbox.storeId}`,
  );
} else {
  say(`PortOne           external store from PORTONE_* (point its webhook at ${state.webhookUrl})`);
}
say(`webhooks          ${state.webhookUrl}`);
say(
  `reconcile         curl -s -X POST ${state.supabaseUrl}/functions/v1/reconcile -H "Authorization: Bearer ${state.reconcileSecret}"`,
);
say(`state file        ${Deno.env.get("DEVSTACK_STATE_FILE") ?? ".artifacts/devstack.json"}`);
say();
say("Functions:");
for (const line of fnLines) say(line);
say();
say("In another terminal, SUPABASE_URL, ANON_KEY, TOKEN, USER_ID, RECONCILE_SECRET, SANDBOX_CONTROL_URL:");
say(`  eval "$(deno task -q env)"             # or: deno task -q env [--admin] <user-uuid>`);
say();
say("A user token (creates the auth.users row):");
say("  TOKEN=$(deno task -q token)            # or: deno task -q token [--admin] <user-uuid>");
say("  (--admin: a merchant admin, app_metadata.payments_admin, who may cancel)");
say();
say("curl:");
say(`  curl -s ${state.supabaseUrl}/functions/v1/confirm -H "Authorization: Bearer $TOKEN" \\`);
say(`    -H 'content-type: application/json' -d '{"paymentId":"pay_0123456789abcdef"}'`);
say();
say("supabase-js:");
say(
  `  const supabase = createClient("${state.supabaseUrl}", "<anon key>", { accessToken: () => Promise.resolve(TOKEN) });`,
);
say(`  const { data, error } = await supabase.functions.invoke("prepare", { body: { orderId } });`);
say();
say("Ctrl-C stops everything.");
