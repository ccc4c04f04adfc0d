/**
 * Every function loads the way `supabase functions deploy` bundles it: its own deno.json (the root one is
 * never read at deploy), relative `.ts` imports that stay inside the project root, npm specifiers pinned in
 * shared/infra/deps.ts only, and a module graph the CLI's import walker (a regex over import/export specifiers
 * with a file extension) reaches completely.
 */
import assert from "node:assert/strict";
import { parseToml } from "./support/deps.ts";

const repoRoot = new URL("../", import.meta.url);
const functionsDir = new URL("supabase/functions/", repoRoot);
/** The two pin files: deps.ts (server) and deps-client.ts (browser-safe, re-exported by deps.ts). */
const depsModules = new Set(
  ["shared/infra/deps.ts", "shared/infra/deps-client.ts"].map((path) => new URL(path, repoRoot).href),
);
const expectedFunctions = [
  "admin",
  "billing-key",
  "cancel",
  "confirm",
  "identity-verification",
  "prepare",
  "reconcile",
  "webhook",
];
/** Functions PortOne or a scheduler call without a Supabase user JWT; they authenticate themselves. */
const withoutGatewayJwt = new Set(["webhook", "reconcile"]);

interface FunctionConfig {
  verify_jwt?: unknown;
  import_map?: unknown;
  entrypoint?: unknown;
}

async function run(args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: repoRoot,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  return {
    ok: out.success,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** The CLI's walker: import/export/dynamic-import specifiers that are relative or absolute and have an extension. */
async function walkLikeTheBundler(entry: URL): Promise<Set<string>> {
  const seen = new Set<string>();
  const pending = [entry];
  const pattern =
    /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;
  while (pending.length) {
    const url = pending.pop()!;
    if (seen.has(url.href)) continue;
    seen.add(url.href);
    const text = await Deno.readTextFile(url);
    for (const match of text.matchAll(pattern)) {
      const specifier = match[1] ?? match[2] ?? match[3] ?? "";
      if (/^(\.\.?\/|\/)/.test(specifier) && /\.[a-z]+$/i.test(specifier)) {
        pending.push(new URL(specifier, url));
      }
    }
  }
  return seen;
}

/** Syntactically valid settings pointing nowhere: booting must not need the network. */
const completeEnv: Record<string, string> = {
  PORTONE_API_SECRET: "boot-probe-secret",
  PORTONE_STORE_ID: "store-boot-probe",
  PORTONE_CHANNEL_KEY: "channel-key-boot-probe",
  PORTONE_WEBHOOK_SECRET: "whsec_Ym9vdC1wcm9iZS1zZWNyZXQtMTIzNDU2",
  PORTONE_API_BASE: "http://127.0.0.1:9",
  SUPABASE_URL: "http://127.0.0.1:9",
  SUPABASE_DB_URL: "postgresql://postgres@127.0.0.1:9/postgres",
  IDENTITY_CI_PEPPER: "boot-probe-pepper-0123456789abcdef0123",
  RECONCILE_SECRET: "boot-probe-reconcile-secret-0123456789",
  DATA_ENCRYPTION_KEYS: `boot-probe:${btoa("b".repeat(32))}`,
};

/** Imports a function module in a fresh process, as the edge runtime would, and sends it a preflight. */
async function bootProbe(entry: URL, importMap: URL, env: Record<string, string>) {
  const probe = `const m = await import(${JSON.stringify(entry.href)});
    const r = await m.default.fetch(new Request("http://localhost/functions/v1/probe", { method: "OPTIONS" }));
    console.log(JSON.stringify({ status: r.status, cors: r.headers.get("access-control-allow-origin") }));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-lock", "--config", importMap.pathname, probe],
    cwd: repoRoot,
    clearEnv: true,
    env: {
      ...env,
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      NO_COLOR: "1",
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    ok: out.success,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const config = parseToml(await Deno.readTextFile(new URL("supabase/config.toml", repoRoot))) as {
  functions?: Record<string, FunctionConfig>;
};

Deno.test("supabase/functions holds exactly the expected functions, each configured in config.toml", async () => {
  const dirs = [];
  for await (const entry of Deno.readDir(functionsDir)) if (entry.isDirectory) dirs.push(entry.name);
  assert.deepEqual(dirs.sort(), expectedFunctions);
  assert.deepEqual(Object.keys(config.functions ?? {}).sort(), expectedFunctions);
});

for (const name of expectedFunctions) {
  Deno.test(`${name}: bundles and type-checks as deployed`, async (t) => {
    const block = config.functions?.[name] ?? {};
    const entry = new URL(`${name}/index.ts`, functionsDir);
    const importMap = new URL(`${name}/deno.json`, functionsDir);

    await t.step("config.toml states verify_jwt, entrypoint and import_map", () => {
      assert.equal(block.verify_jwt, !withoutGatewayJwt.has(name));
      assert.equal(block.entrypoint, `./functions/${name}/index.ts`);
      assert.equal(block.import_map, `./functions/${name}/deno.json`);
      Deno.statSync(entry);
      Deno.statSync(importMap);
    });

    const info = await run(["info", "--json", "--no-lock", "--config", importMap.pathname, entry.pathname]);
    assert.ok(info.ok, info.stderr);
    const graph = JSON.parse(info.stdout) as {
      modules: {
        specifier: string;
        kind?: string;
        dependencies?: { specifier: string; code?: { specifier: string }; isDynamic?: boolean }[];
      }[];
    };

    await t.step("local modules stay inside the project root and outside tests/", () => {
      const local = graph.modules.filter((m) => m.specifier.startsWith("file:"));
      assert.ok(local.length >= 2, "expected the entrypoint and shared modules");
      for (const module of local) {
        assert.ok(module.specifier.startsWith(repoRoot.href), `${module.specifier} is outside the project`);
        assert.ok(
          !module.specifier.startsWith(new URL("tests/", repoRoot).href),
          `${module.specifier} is test code`,
        );
      }
    });

    await t.step("only shared/infra/deps*.ts name packages, each once, all as pinned npm: specifiers", () => {
      const named = new Map<string, string>();
      for (const module of graph.modules) {
        for (const dependency of module.dependencies ?? []) {
          const specifier = dependency.specifier;
          if (specifier.startsWith(".") || specifier.startsWith("/")) continue;
          if (specifier.startsWith("node:")) continue;
          assert.ok(depsModules.has(module.specifier), `${module.specifier} imports ${specifier}`);
          assert.match(specifier, /^npm:(@[a-z0-9-]+\/)?[a-z0-9.-]+@\d+\.\d+\.\d+(\/[A-Za-z_/]+)?$/);
          // one package, one pin: never pinned in both files
          const name = /^npm:(@?[^@]+)@/.exec(specifier)![1]!;
          assert.ok(
            (named.get(name) ?? module.specifier) === module.specifier,
            `${name} is pinned in two files`,
          );
          named.set(name, module.specifier);
        }
      }
    });

    await t.step("boots without the PortOne SDK or jose: they load at their first use (cold start)", () => {
      // the packages a function evaluates before its first request: static, non-type-only imports
      const byUrl = new Map(graph.modules.map((m) => [m.specifier, m]));
      const loaded = new Set<string>();
      const pending = [entry.href];
      while (pending.length) {
        const module = byUrl.get(pending.pop()!);
        for (const dependency of module?.dependencies ?? []) {
          const target = dependency.code?.specifier;
          if (!target || dependency.isDynamic || loaded.has(target)) continue;
          loaded.add(target);
          if (target.startsWith("file:")) pending.push(target);
        }
      }
      const packages = [...loaded].filter((specifier) => specifier.startsWith("npm:"));
      assert.ok(packages.some((s) => s.startsWith("npm:postgres@")), `expected postgres among ${packages}`);
      for (const specifier of packages) {
        assert.ok(!specifier.startsWith("npm:@portone/"), `${specifier} is loaded at boot`);
        assert.ok(!specifier.startsWith("npm:jose@"), `${specifier} is loaded at boot`);
      }
    });

    await t.step("the bundler's import walker reaches every module deno resolves", async () => {
      const resolved = new Set(
        graph.modules.filter((m) => m.specifier.startsWith("file:")).map((m) => m.specifier),
      );
      const walked = await walkLikeTheBundler(entry);
      assert.deepEqual([...walked].sort(), [...resolved].sort());
    });

    await t.step("type-checks under its own deno.json", async () => {
      const check = await run(["check", "--no-lock", "--config", importMap.pathname, entry.pathname]);
      assert.ok(check.ok, check.stderr);
    });

    await t.step("boots with a complete environment and answers CORS preflight", async () => {
      const probe = await bootProbe(entry, importMap, completeEnv);
      assert.ok(probe.ok, probe.stderr);
      assert.deepEqual(JSON.parse(probe.stdout.trim().split("\n").at(-1)!), { status: 204, cors: "*" });
    });

    if ((await Deno.readTextFile(entry)).includes("runtimeDeps(")) {
      await t.step("refuses to boot without PORTONE_API_SECRET, naming it", async () => {
        const { PORTONE_API_SECRET: _, ...incomplete } = completeEnv;
        const probe = await bootProbe(entry, importMap, incomplete);
        assert.equal(probe.ok, false);
        assert.match(probe.stderr, /ConfigError: Invalid configuration: PORTONE_API_SECRET is missing/);
      });
    }
  });
}
