/**
 * Checks real answers against the committed description (shared/contract/functions.openapi.json) with a
 * JSON Schema validator of its own (Ajv), not with the zod schemas it was generated from: so a response
 * that drifted from the description, or a description that does not say what the functions answer,
 * fails the journey.
 */
import assert from "node:assert/strict";
import { Ajv2020 } from "../support/deps.ts";
import type { OperationName } from "../../shared/contract/operations.ts";
import type { CallResult } from "../../shared/client/mod.ts";

const file = new URL("../../shared/contract/functions.openapi.json", import.meta.url);

interface Described {
  operationId: string;
  responses: Record<string, { content: { "application/json": { schema: Record<string, unknown> } } }>;
}

const document = JSON.parse(await Deno.readTextFile(file)) as {
  paths: Record<string, Record<string, Described>>;
};
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
const validators = new Map<string, ReturnType<typeof ajv.compile>>();

/** Every (operation, status) checked so far, for the test to show what it covered. */
export const checked = new Set<string>();

/** Asserts that `body`, answered with `status`, is what the description says `operation` answers. */
export function assertDescribed(operation: OperationName, status: number, body: unknown): void {
  const described = Object.values(document.paths).flatMap((item) => Object.values(item))
    .find((op) => op.operationId === operation);
  assert.ok(described, `${operation} is in the description`);
  const schema = described.responses[String(status)]?.content["application/json"].schema;
  assert.ok(schema, `the description of ${operation} has no ${status} answer (got ${JSON.stringify(body)})`);
  const key = `${operation} ${status}`;
  let validate = validators.get(key);
  if (!validate) validators.set(key, validate = ajv.compile(schema));
  assert.ok(
    validate(body),
    `${operation} answered ${status} outside its description: ${ajv.errorsText(validate.errors)}\n${
      JSON.stringify(body)
    }`,
  );
  checked.add(key);
}

/** A typed client's result, checked against the description; returns it for chaining. */
export function described<N extends OperationName, R extends CallResult<N>>(operation: N, result: R): R {
  assert.notEqual(result.status, 0, `${operation}: no answer (${JSON.stringify(result)})`);
  assertDescribed(operation, result.status, result.ok ? result.data : { error: result.error });
  return result;
}
