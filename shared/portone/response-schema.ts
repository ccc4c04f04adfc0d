/**
 * PortOne's answers are validated with zod schemas built at their first use instead of at module load: an
 * isolate whose first request is refused before it reaches PortOne (a bad token, a bad body, a deleted
 * account) never builds them. The payment schema alone costs a cold isolate ≈1.4 MiB and 5 ms (issue #14).
 */
import type { z } from "../infra/deps.ts";

export interface ResponseSchema<S extends z.ZodType> {
  parse(raw: unknown): z.output<S>;
}

export function responseSchema<S extends z.ZodType>(build: () => S): ResponseSchema<S> {
  let schema: S | undefined;
  return {
    parse(raw) {
      schema ??= build();
      return schema.parse(raw);
    },
  };
}
