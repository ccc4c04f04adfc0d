/**
 * `deno task dev` that crashes once it is ready: main.ts as is, then an error thrown from a timer that no
 * code of ours catches (as postgres.js's null-socket TypeError was). For tests/devstack/crash.test.ts.
 */
await import("./main.ts");
setTimeout(() => {
  throw new Error("a crash after start-up, thrown from a timer");
}, 200);
