/**
 * The contract in shared/contract/ is the single source of the typed client and of the description:
 * the committed description is what the contract generates, every error code a function's code can raise
 * is declared for its operations, and the client bundles for a browser without server-only code.
 */
import assert from "node:assert/strict";
import { generateOpenApiText, openApiFile } from "../support/database-types.ts";
import { operations } from "../../shared/contract/operations.ts";
import { errorStatus } from "../../shared/infra/errors.ts";

const repoRoot = new URL("../../", import.meta.url);

Deno.test("contract: the committed OpenAPI description is what shared/contract/ generates", async () => {
  const committed = await Deno.readTextFile(openApiFile);
  assert.ok(
    committed === await generateOpenApiText(),
    "shared/contract/functions.openapi.json is stale: run `deno task types` and commit it",
  );
});

/** Error codes raised in these modules: `new AppError("code", …)` and mapping tables' `code: "…"`. */
async function raisedCodes(modules: string[]): Promise<Set<string>> {
  const codes = new Set<string>();
  for (const specifier of modules) {
    const text = await Deno.readTextFile(new URL(specifier));
    for (const [, code] of text.matchAll(/(?:AppError\(\s*|code:\s*)"([a-z_]+)"/g)) {
      if (code! in errorStatus) codes.add(code!);
    }
  }
  return codes;
}

/** Our own modules a function's index.ts reaches (the contract and the catalogue list codes, not raise them). */
async function functionModules(fn: string): Promise<string[]> {
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `supabase/functions/${fn}/index.ts`],
    cwd: repoRoot,
    stdout: "piped",
    stderr: "null",
  }).output();
  const graph = JSON.parse(new TextDecoder().decode(info.stdout)) as { modules: { specifier: string }[] };
  const shared = new URL("shared/", repoRoot).href;
  return graph.modules.map((m) => m.specifier).filter((s) =>
    s.startsWith(shared) && !s.startsWith(`${shared}contract/`) && !s.endsWith("/infra/errors.ts")
  );
}

Deno.test("contract: every code a function can raise is declared for its operations", async () => {
  const declared = new Map<string, Set<string>>();
  for (const op of Object.values(operations)) {
    declared.set(op.fn, new Set([...(declared.get(op.fn) ?? []), ...op.errors]));
  }
  for (const [fn, codes] of declared) {
    // reconcile and the webhook call into the payment modules but answer their refusals themselves (logged,
    // counted, retried): what they answer is raised in their own module and the HTTP wrapper
    const all = await functionModules(fn);
    const modules = fn === "reconcile" || fn === "webhook"
      ? all.filter((s) => /\/(reconcile|webhook)\.ts$|\/infra\/http\.ts$/.test(s))
      : all;
    assert.ok(modules.length >= 2, `${fn}: found its modules (${modules.length})`);
    const missing = [...await raisedCodes(modules)].filter((code) => !codes.has(code));
    assert.deepEqual(missing, [], `${fn} can answer codes its contract does not list`);
  }
});

Deno.test("contract: the typed client bundles for a browser without server-only code", async () => {
  const dir = await Deno.makeTempDir({ prefix: "client-bundle-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "browser", "-o", `${dir}/client.js`, "shared/client/mod.ts"],
      cwd: repoRoot,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const bundle = await Deno.readTextFile(`${dir}/client.js`);
    assert.match(bundle, /createPaymentsClient/);
    for (
      const forbidden of [/npm:postgres|node_modules\/postgres\//, /server-sdk/, /\bDeno\./, /from "node:/]
    ) {
      assert.doesNotMatch(bundle, forbidden);
    }
    // and it runs: the bundle is an ES module whose client calls through what it is given
    const { createPaymentsClient } = await import(`file://${dir}/client.js`);
    const calls: unknown[] = [];
    const client = createPaymentsClient({
      functions: {
        invoke: (name: string, options: unknown) => {
          calls.push([name, options]);
          return Promise.resolve({ data: { billingKeys: [] }, error: null, response: new Response("{}") });
        },
      },
    });
    const listed = await client.billingKeys.list();
    assert.deepEqual(listed, { ok: true, status: 200, data: { billingKeys: [] }, replayed: false });
    assert.deepEqual(calls, [["billing-key", { method: "GET" }]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
