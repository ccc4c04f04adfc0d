/**
 * The README's "Run it locally" snippets, taken from README.md by their `<!-- readme-test: NAME -->`
 * markers (never copied here), run as written against `deno task dev`: the shell ones with bash, the
 * TypeScript ones type-checked and run by Deno from the repository root, as the README says to run them.
 */
import assert from "node:assert/strict";
import { createScratchDatabase } from "../support/database.ts";
import { repoRoot } from "./keys.ts";
import { type RunningStack, spawnStack } from "./test-support.ts";

const readme = await Deno.readTextFile(`${repoRoot}README.md`);

function snippet(name: string, lang: "sh" | "ts"): string {
  const match = new RegExp(`<!-- readme-test: ${name} -->\\s*\`\`\`${lang}\\n([\\s\\S]*?)\`\`\`\\n`).exec(
    readme,
  );
  assert.ok(match, `README.md has a \`\`\`${lang} block marked readme-test: ${name}`);
  return match[1]!;
}

/** Runs a bash script in the repository root, as a developer's second terminal next to `deno task dev`. */
async function shell(stack: RunningStack, script: string, env: Record<string, string> = {}): Promise<string> {
  const denoDir = Deno.execPath().slice(0, Deno.execPath().lastIndexOf("/"));
  const out = await new Deno.Command("bash", {
    args: ["-euo", "pipefail", "-c", script],
    cwd: repoRoot,
    env: {
      PATH: `${denoDir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      HOME: Deno.env.get("HOME") ?? "/root",
      NO_COLOR: "1",
      // the stack this test started (a developer's would be at the default .artifacts/ paths)
      DEVSTACK_STATE_FILE: stack.stateFile,
      DEVSTACK_KEY_FILE: stack.keyFile,
      ...env,
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(
    out.success,
    `bash failed (${out.code}):\n${script}\n${stdout}${new TextDecoder().decode(out.stderr)}`,
  );
  return stdout;
}

/** How the README runs a .ts snippet (`deno run -A x.ts` in the repository root), type-checked. */
const runTs = `exec deno eval --check --ext=ts "$README_SNIPPET"`;

Deno.test("README: the local-run snippets work as written against deno task dev", async (t) => {
  const suiteServer = Deno.env.get("TEST_ADMIN_DATABASE_URL");
  const scratch = suiteServer ? await createScratchDatabase(suiteServer) : null;
  const stack = await spawnStack({ env: scratch ? { DATABASE_URL: scratch.url } : {} });
  try {
    const localShell = snippet("local-shell", "sh");

    await t.step("env + curl: a signed-in call to billing-key", async () => {
      const out = await shell(stack, localShell);
      assert.equal(out.trim(), '{"billingKeys":[]}');
    });

    let paymentId = "";
    await t.step("checkout.ts: create_order → prepare → the sandbox pays → confirm", async () => {
      const out = await shell(stack, `${localShell}\n${runTs}`, {
        README_SNIPPET: snippet("checkout", "ts"),
      });
      assert.match(out, /status: "PAID"/);
      assert.match(out, /order: \{ id: "[0-9a-f-]{36}", status: "paid" \}/);
      paymentId = /paymentId: "(pay_[0-9a-f]{32})"/.exec(out)?.[1] ?? "";
      assert.ok(paymentId, out);
    });

    await t.step("refund.ts as the merchant's admin: a partial refund, then one too large", async () => {
      const script = `${snippet("admin-shell", "sh")}\n${runTs}`;
      const env = { README_SNIPPET: snippet("refund", "ts"), PAYMENT_ID: paymentId };
      // coffee-beans is 32,000 won; the snippet refunds 10,000
      assert.equal((await shell(stack, script, env)).trim(), "refunded; 22000 left");
      assert.equal((await shell(stack, script, env)).trim(), "refunded; 12000 left");
      assert.equal((await shell(stack, script, env)).trim(), "refunded; 2000 left");
      assert.equal((await shell(stack, script, env)).trim(), "less is left than that");
    });

    await t.step("reconcile with the stack's secret", async () => {
      // (echo: the first snippet's curl output has no newline of its own)
      const out = await shell(stack, `${localShell}\necho\n${snippet("reconcile", "sh")}`);
      const report = JSON.parse(out.trim().split("\n").at(-1)!);
      assert.ok(report.window?.from, JSON.stringify(report));
      assert.equal(typeof report.portone.scanned, "number");
    });
  } finally {
    await stack.stop();
    await scratch?.drop();
  }
});
