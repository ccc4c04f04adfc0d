/**
 * The one HTTP wrapper every function goes through: CORS (with preflight), method check, body size limit,
 * JSON parsing and schema validation, a request id, and the mapping of every thrown error to
 * `{ "error": { "code", "message" } }`. Handlers never build error responses themselves.
 */
import { z } from "./deps.ts";
import { bearerToken, type Caller, type VerifyAccessToken } from "./auth.ts";
import { isTransientDatabaseError } from "./db.ts";
import { AppError, type ErrorCode, errorStatus } from "./errors.ts";
import { findJsonInputProblem, maxJsonDepth } from "./input-text.ts";
import { log } from "./log.ts";

export const maxBodyBytes = 64 * 1024;

const corsHeaders = {
  "access-control-allow-origin": "*",
  "access-control-allow-headers": "authorization, x-client-info, apikey, content-type, idempotency-key",
  "access-control-expose-headers": "x-request-id, idempotent-replayed",
  "access-control-max-age": "86400",
};

export type HttpMethod = "GET" | "POST" | "DELETE";

export interface RequestContext {
  readonly request: Request;
  readonly requestId: string;
  readonly url: URL;
}

export interface UserRequestContext extends RequestContext {
  readonly caller: Caller;
}

interface BaseDefinition {
  /** Function name, used in log lines. */
  readonly name: string;
  readonly methods: readonly HttpMethod[];
}

/** `auth: "user"`: a signed-in user's JWT is required and verified before `handle` runs. */
export interface UserFunctionDefinition extends BaseDefinition {
  readonly auth: "user";
  readonly verifyAccessToken: VerifyAccessToken;
  readonly handle: (ctx: UserRequestContext) => Promise<Response>;
}

/** `auth: "none"`: the function authenticates the request itself (webhook signature, scheduler secret). */
export interface OpenFunctionDefinition extends BaseDefinition {
  readonly auth: "none";
  readonly handle: (ctx: RequestContext) => Promise<Response>;
}

export type FunctionDefinition = UserFunctionDefinition | OpenFunctionDefinition;

/** A Deno/edge-runtime module default export: `export default defineFunction(...)`. */
export interface EdgeFunction {
  fetch(request: Request): Promise<Response>;
}

export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

export function errorResponse(error: AppError): Response {
  const body: Record<string, unknown> = { code: error.code, message: error.message };
  if (error.details) Object.assign(body, error.details);
  return json({ error: body }, error.status);
}

/** Reads the body as text, refusing bodies over `maxBodyBytes` without buffering them whole. */
export async function readBodyText(request: Request, limit = maxBodyBytes): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limit) throw new AppError("payload_too_large", `Request body exceeds ${limit} bytes`);
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new AppError("payload_too_large", `Request body exceeds ${limit} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new AppError("invalid_json", "Request body is not valid UTF-8", { cause });
  }
}

/** Parses a JSON body and validates it; unknown fields are refused by the schemas themselves (strict objects). */
export async function readJson<T extends z.ZodType>(request: Request, schema: T): Promise<z.output<T>> {
  const contentType = request.headers.get("content-type") ?? "";
  if (contentType && !/^application\/json\b/i.test(contentType)) {
    throw new AppError("unsupported_media_type", "Content-Type must be application/json");
  }
  const text = await readBodyText(request);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new AppError("invalid_json", "Request body is not valid JSON", { cause });
  }
  return validate(schema, parsed);
}

/**
 * Validates parsed JSON against a (strict) schema. Every string and key is first checked to be storable
 * text (no U+0000, no unpaired surrogate) and the nesting bounded, so no handler, hash or query ever sees
 * input Postgres would refuse.
 */
export function validate<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const problem = findJsonInputProblem(value);
  if (problem) {
    const where = problem.path ? `Invalid field '${problem.path}': ` : "Invalid request: ";
    throw new AppError(
      "invalid_request",
      where +
        (problem.reason === "too_deep"
          ? `nested deeper than ${maxJsonDepth} levels`
          : "text must not contain U+0000 or unpaired surrogates"),
      { details: { field: problem.path || null } },
    );
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue?.path.join(".") ?? "";
    // a schema may refuse with a more specific catalogued 400 (cancel's refundAccount: invalid_refund_account)
    const named = issue?.code === "custom"
      ? (issue.params as { errorCode?: unknown } | undefined)?.errorCode
      : null;
    const code = typeof named === "string" && errorStatus[named as ErrorCode] === 400
      ? named as ErrorCode
      : "invalid_request";
    throw new AppError(
      code,
      field ? `Invalid field '${field}': ${issue?.message}` : "Invalid request",
      {
        details: { field: field || null },
      },
    );
  }
  return result.data;
}

export function defineFunction(definition: FunctionDefinition): EdgeFunction {
  return {
    async fetch(request: Request): Promise<Response> {
      // a caller-supplied id is kept for tracing only when it is short and plain (it lands in log lines)
      const suppliedId = request.headers.get("x-request-id");
      const requestId = suppliedId && /^[A-Za-z0-9._-]{1,64}$/.test(suppliedId)
        ? suppliedId
        : crypto.randomUUID();
      const started = performance.now();
      let response: Response;
      try {
        if (request.method === "OPTIONS") {
          response = new Response(null, {
            status: 204,
            headers: { "access-control-allow-methods": [...definition.methods, "OPTIONS"].join(", ") },
          });
        } else if (!(definition.methods as readonly string[]).includes(request.method)) {
          throw new AppError("method_not_allowed", `Method ${request.method} is not allowed`);
        } else {
          const ctx = { request, requestId, url: new URL(request.url) };
          response = definition.auth === "user"
            ? await definition.handle({
              ...ctx,
              caller: await definition.verifyAccessToken(bearerToken(request)),
            })
            : await definition.handle(ctx);
        }
      } catch (error) {
        if (error instanceof AppError) {
          response = errorResponse(error);
          if (error.status >= 500) log("error", "request_failed", { fn: definition.name, requestId, error });
        } else if (isTransientDatabaseError(error)) {
          log("error", "database_unavailable", { fn: definition.name, requestId, error });
          response = errorResponse(
            new AppError("database_unavailable", "The database is unavailable; retry later"),
          );
        } else {
          log("error", "request_crashed", { fn: definition.name, requestId, error });
          response = errorResponse(new AppError("internal", "Internal error"));
        }
      }
      const headers = new Headers(response.headers);
      for (const [key, value] of Object.entries(corsHeaders)) headers.set(key, value);
      headers.set("x-request-id", requestId);
      log("info", "request", {
        fn: definition.name,
        requestId,
        method: request.method,
        status: response.status,
        ms: Math.round(performance.now() - started),
      });
      return new Response(response.body, { status: response.status, headers });
    },
  };
}

/** A JSON reply that may have been replayed from an Idempotency-Key record. */
export function replyJson(reply: { status: number; body: unknown; replayed: boolean }): Response {
  return json(reply.body, reply.status, reply.replayed ? { "idempotent-replayed": "true" } : {});
}
