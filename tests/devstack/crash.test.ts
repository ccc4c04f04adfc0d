/**
 * The dev stack leaves nothing behind when it crashes or is killed, and the next start removes what a
 * SIGKILL left (issue #17, observation 1's aftermath: the crashed stack had left its cluster running and
 * `.artifacts/devstack.json` stale).
 */
import assert from "node:assert/strict";
import { listening, spawnStack } from "./test-support.ts";

const crashEntry = new URL("./crash-after-ready.ts", import.meta.url).pathname;
const readyTimeoutMs = 120_000;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("devstack: a crash or a kill leaves nothing behind; the next start removes a SIGKILL's leftovers", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "devstack-crash-" });
  const stateFile = `${dir}/devstack.json`;
  try {
    await t.step("an uncaught error: the cluster is stopped and the state file removed", async () => {
      const stack = await spawnStack({ dir, entry: crashEntry, readyTimeoutMs });
      const databasePort = Number(new URL(stack.state.databaseUrl).port);
      assert.ok(await listening(databasePort));
      assert.equal(await stack.exited, 1, stack.output());
      assert.match(stack.output(), /stopping \(uncaught error\)/);
      assert.equal(await listening(databasePort), false, "the cluster is stopped");
      assert.equal(await exists(stateFile), false, "the state file is removed");
    });

    let killedPort = 0;
    let killedPid = 0;
    await t.step("SIGKILL: no handler runs, so the cluster and the state file stay behind", async () => {
      const stack = await spawnStack({ dir, readyTimeoutMs });
      killedPort = Number(new URL(stack.state.databaseUrl).port);
      killedPid = stack.state.pid;
      stack.kill("SIGKILL");
      await stack.exited;
      assert.ok(await listening(killedPort), "the killed stack's cluster still runs");
      assert.ok(await exists(stateFile), "its state file is still there");
    });

    await t.step(
      "the next start stops that cluster and replaces the stale state file; SIGINT stops it",
      async () => {
        const stack = await spawnStack({ dir, readyTimeoutMs });
        const output = stack.output();
        assert.match(output, new RegExp(`removed a stale state file left by pid ${killedPid}`));
        assert.match(output, /removed an abandoned cluster/);
        assert.equal(await listening(killedPort), false, "the abandoned cluster is stopped");
        assert.notEqual(stack.state.pid, killedPid);
        const databasePort = Number(new URL(stack.state.databaseUrl).port);
        stack.kill("SIGINT");
        assert.equal(await stack.exited, 0, stack.output());
        assert.equal(await listening(databasePort), false);
        assert.equal(await exists(stateFile), false);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
