/**
 * The local stand-in for Supabase's API gateway on one port: `/functions/v1/<name>[/...]` to the real
 * function modules (verify_jwt from config.toml, enforced like the local edge runtime does),
 * `/auth/v1/.well-known/jwks.json`, a minimal `/rest/v1` (rest.ts) and the demo checkout page, with the
 * typed client bundled for browsers (`/devstack/payments-client.js`) and the functions' description
 * (`/devstack/v1/openapi.json`).
 */
import type { EdgeFunction } from "../../shared/infra/http.ts";
import type { Sql } from "../../shared/infra/deps.ts";
import { jose } from "../support/deps.ts";
import type { DevKeys } from "./keys.ts";
import { handleRest } from "./rest.ts";
import { ensureUser } from "./users.ts";
import { userToken } from "./keys.ts";

export interface LoadedFunction {
  readonly name: string;
  readonly verifyJwt: boolean;
  readonly module?: EdgeFunction;
  /** Why the module could not be imported (a ConfigError, a syntax error); answered as 500. */
  readonly loadError?: string;
}

export interface GatewayOptions {
  readonly functions: ReadonlyMap<string, LoadedFunction>;
  readonly keys: DevKeys;
  readonly sql: Sql;
  /** What the demo page needs to know (public values only). */
  readonly publicConfig: () => Record<string, unknown>;
  readonly supabaseJsFile: string;
}

// What Kong's cors plugin (on the local stack's functions route) answers to a preflight.
const preflightMethods = "GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS";
const defaultAllowedHeaders = "authorization, x-client-info, apikey, content-type, idempotency-key";

const demoDir = new URL("./demo/", import.meta.url);
const repoDir = new URL("../../", import.meta.url);
const openApiFile = new URL("shared/contract/functions.openapi.json", repoDir);

/** shared/client/ bundled for browsers by `deno bundle`, once per stack, on first request. */
let clientBundle: Promise<Uint8Array<ArrayBuffer>> | null = null;
function paymentsClientBundle(): Promise<Uint8Array<ArrayBuffer>> {
  return clientBundle ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "payments-client-" });
    try {
      const result = await new Deno.Command(Deno.execPath(), {
        args: [
          "bundle",
          "--quiet",
          "--platform",
          "browser",
          "-o",
          `${dir}/client.js`,
          "shared/client/mod.ts",
        ],
        cwd: repoDir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!result.success) throw new Error(`deno bundle failed: ${new TextDecoder().decode(result.stderr)}`);
      return await Deno.readFile(`${dir}/client.js`);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  })();
}
const demoFiles: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/demo/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/demo/checkout.js": { file: "checkout.js", type: "text/javascript; charset=utf-8" },
  "/demo/operations": { file: "operations.html", type: "text/html; charset=utf-8" },
  "/demo/operations.js": { file: "operations.js", type: "text/javascript; charset=utf-8" },
};

function withCors(response: Response): Response {
  if (response.headers.has("access-control-allow-origin")) return response;
  const headers = new Headers(response.headers);
  headers.set("access-control-allow-origin", "*");
  headers.set("access-control-expose-headers", "x-request-id, idempotent-replayed");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

function gatewayError(status: number, code: string | number, message: string): Response {
  return Response.json({ code, message }, { status });
}

export function createGateway(options: GatewayOptions): (request: Request) => Promise<Response> {
  const jwks = jose.createLocalJWKSet(JSON.parse(options.keys.jwks));

  async function claimsOf(token: string): Promise<Record<string, unknown> | null> {
    try {
      const { payload } = await jose.jwtVerify(token, jwks, { algorithms: ["ES256"] });
      return payload as Record<string, unknown>;
    } catch {
      return null;
    }
  }

  function bearer(request: Request): string | null {
    const match = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "");
    return match?.[1] ?? null;
  }

  async function functions(request: Request, name: string): Promise<Response> {
    const fn = options.functions.get(name);
    if (!fn) return gatewayError(404, "NOT_FOUND", "Requested function was not found");
    if (fn.verifyJwt) {
      const token = bearer(request);
      if (!token) return gatewayError(401, 401, "Missing authorization header");
      if (!(await claimsOf(token))) return gatewayError(401, 401, "Invalid JWT");
    }
    if (!fn.module) return gatewayError(500, "BOOT_ERROR", `Function failed to start: ${fn.loadError}`);
    // the original request (URL with sub-path and query, headers, body) goes through untouched
    return await fn.module.fetch(request);
  }

  async function rest(request: Request, path: string): Promise<Response> {
    const token = bearer(request) ?? request.headers.get("apikey");
    const claims = token ? await claimsOf(token) : null;
    if (!claims || typeof claims.role !== "string") {
      return Response.json(
        { code: "PGRST301", message: "JWT invalid or missing", details: null, hint: null },
        {
          status: 401,
        },
      );
    }
    return await handleRest(options.sql, { role: claims.role, claims }, request, path);
  }

  async function devToken(request: Request): Promise<Response> {
    const body = (await request.json().catch(() => ({}))) as { userId?: unknown; admin?: unknown };
    const admin = body.admin === true;
    const userId = typeof body.userId === "string" ? body.userId : crypto.randomUUID();
    if (!/^[0-9a-f-]{36}$/i.test(userId)) {
      return gatewayError(400, "invalid_request", "userId must be a UUID");
    }
    await ensureUser(options.sql, userId, { admin });
    return Response.json({ userId, admin, accessToken: await userToken(options.keys, userId, { admin }) });
  }

  async function route(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    const fn = /^\/functions\/v1\/([^/]+)(?:\/.*)?$/.exec(path);
    if (fn) return await functions(request, decodeURIComponent(fn[1]!));
    if (path === "/auth/v1/.well-known/jwks.json" && request.method === "GET") {
      return new Response(options.keys.jwks, {
        headers: { "content-type": "application/json", "cache-control": "public, max-age=600" },
      });
    }
    if (path.startsWith("/rest/v1/")) return await rest(request, path.slice("/rest/v1/".length));
    if (path === "/devstack/v1/config" && request.method === "GET") {
      return Response.json(options.publicConfig());
    }
    if (path === "/devstack/v1/token" && request.method === "POST") return await devToken(request);
    if (path === "/devstack/supabase-js.js" && request.method === "GET") {
      return new Response(await Deno.readFile(options.supabaseJsFile), {
        headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "max-age=3600" },
      });
    }
    if (path === "/devstack/payments-client.js" && request.method === "GET") {
      return new Response(await paymentsClientBundle(), {
        headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" },
      });
    }
    if (path === "/devstack/v1/openapi.json" && request.method === "GET") {
      return new Response(await Deno.readFile(openApiFile), {
        headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
      });
    }
    if (path === "/favicon.ico") return new Response(null, { status: 204 });
    const demo = demoFiles[path];
    if (demo && request.method === "GET") {
      return new Response(await Deno.readFile(new URL(demo.file, demoDir)), {
        headers: { "content-type": demo.type, "cache-control": "no-store" },
      });
    }
    return gatewayError(404, "NOT_FOUND", `No route for ${request.method} ${path}`);
  }

  return async (request) => {
    if (request.method === "OPTIONS") {
      // Answered here, as the local stack's Kong cors plugin does, before auth and before any function.
      return new Response("ok", {
        status: 200,
        headers: {
          "access-control-allow-origin": "*",
          "access-control-allow-methods": preflightMethods,
          "access-control-allow-headers": request.headers.get("access-control-request-headers") ??
            defaultAllowedHeaders,
          "access-control-max-age": "3600",
        },
      });
    }
    try {
      return withCors(await route(request));
    } catch (error) {
      return withCors(
        gatewayError(500, "GATEWAY_ERROR", error instanceof Error ? error.message : String(error)),
      );
    }
  };
}
