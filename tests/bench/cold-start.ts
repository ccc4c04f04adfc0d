/**
 * One cold start, run as a fresh process by the bench: import a function module, answer one request,
 * print `{ importMs, requestMs, status, peakRssKiB }` as one JSON line, exit.
 *
 * Usage: deno run --allow-all tests/bench/cold-start.ts <module path> <request JSON> [served]
 * where the request JSON is `{ method, path, headers, body }`. The request goes to the module's `fetch`
 * directly, or with `served` over HTTP: `Deno.serve` on a free loopback port and one `fetch` to it (how a
 * deployed function answers, the server's and the client's start-up included).
 */
import { peakRssKiB } from "./proc.ts";

const [modulePath, requestJson, mode] = Deno.args;
if (!modulePath || !requestJson) throw new Error("usage: cold-start.ts <module> <request JSON>");
const spec = JSON.parse(requestJson) as {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
};

const t0 = performance.now();
const module = await import(new URL(modulePath, `file://${Deno.cwd()}/`).href) as {
  default: { fetch(request: Request): Promise<Response> };
};
const t1 = performance.now();
let origin = "http://127.0.0.1";
if (mode === "served") {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, module.default.fetch);
  origin = `http://127.0.0.1:${server.addr.port}`;
}
const init = { method: spec.method, headers: spec.headers, body: spec.body };
const response = mode === "served"
  ? await fetch(`${origin}${spec.path}`, init)
  : await module.default.fetch(new Request(`${origin}${spec.path}`, init));
await response.arrayBuffer();
const t2 = performance.now();
Deno.stdout.writeSync(new TextEncoder().encode(
  `${
    JSON.stringify({
      importMs: t1 - t0,
      requestMs: t2 - t1,
      status: response.status,
      peakRssKiB: peakRssKiB(),
    })
  }\n`,
));
Deno.exit(0);
