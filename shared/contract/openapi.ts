/**
 * The machine-readable description of our functions: an OpenAPI 3.1 document (its schemas are JSON Schema
 * 2020-12, from zod's own converter) built from the operations table. `deno task types` writes it to
 * shared/contract/functions.openapi.json; the dev stack serves it at /devstack/v1/openapi.json.
 */
import { z } from "../infra/deps-client.ts";
import { type ErrorCode, errorStatus } from "../infra/errors.ts";
import { errorBody } from "./common.ts";
import { type Operation, operations } from "./operations.ts";

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "throw" });
  return rest;
}

function parameters(op: Operation): JsonSchema[] {
  const list: JsonSchema[] = [];
  for (const [, name] of op.subPath.matchAll(/\{([A-Za-z]+)\}/g)) {
    list.push({ name, in: "path", required: true, schema: { type: "string", format: "uuid" } });
  }
  if (op.idempotencyKey !== "none") {
    list.push({
      name: "Idempotency-Key",
      in: "header",
      required: op.idempotencyKey === "required",
      description:
        "One key per logical request, reused on every retry of it: the same key and body replays " +
        "the stored answer (`idempotent-replayed: true`), another body is 422 idempotency_key_reused.",
      schema: { type: "string", pattern: "^[\\x21-\\x7e]{8,255}$" },
    });
  }
  return list;
}

function responses(op: Operation): Record<string, JsonSchema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of op.errors) {
    const status = errorStatus[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const result: Record<string, JsonSchema> = {
    "200": {
      description: "Success",
      content: { "application/json": { schema: jsonSchema(op.response, "output") } },
    },
  };
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    result[String(status)] = {
      description: codes.join(", "),
      content: { "application/json": { schema: jsonSchema(errorBody(codes), "output") } },
    };
  }
  return result;
}

const security: Record<Operation["auth"], JsonSchema[]> = {
  user: [{ userAccessToken: [] }],
  reconcile_secret: [{ reconcileSecret: [] }],
  portone_signature: [],
};

export function buildOpenApi(): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const [name, op] of Object.entries(operations) as [string, Operation][]) {
    const path = `/functions/v1/${op.fn}${op.subPath}`;
    const item: JsonSchema = {
      operationId: name,
      summary: op.summary,
      tags: [op.fn],
      security: security[op.auth],
      "x-error-codes": Object.fromEntries(op.errors.map((code) => [code, errorStatus[code]])),
    };
    const params = parameters(op);
    if (params.length > 0) item.parameters = params;
    if (op.request) {
      item.requestBody = {
        required: !op.optionalBody,
        content: { "application/json": { schema: jsonSchema(op.request, "input") } },
      };
    }
    item.responses = responses(op);
    (paths[path] ??= {})[op.method.toLowerCase()] = item;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "PortOne V2 payments for Supabase: Edge Functions",
      version: "1",
      description: "Generated from shared/contract/ by `deno task types`; do not edit. Errors are " +
        "`{ error: { code, message } }`; `x-error-codes` lists each operation's codes with their status.",
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    servers: [{ url: "http://127.0.0.1:54321", description: "deno task dev" }],
    components: {
      securitySchemes: {
        userAccessToken: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        reconcileSecret: { type: "http", scheme: "bearer", description: "RECONCILE_SECRET" },
      },
    },
    paths,
  };
}
