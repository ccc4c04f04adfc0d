/**
 * What text we can store. PostgreSQL refuses U+0000 in `text` and `jsonb` ("invalid byte sequence" /
 * "unsupported Unicode escape sequence"), and an unpaired UTF-16 surrogate has no UTF-8 form at all (it
 * would be stored as U+FFFD, or refused inside jsonb). Both are refused where JSON enters (the HTTP
 * wrapper's `validate`, the webhook), so no such string ever reaches a query, a hash or a log line.
 *
 * Nesting is bounded there too: our request schemas are at most three levels deep, and a walker over
 * attacker-sized nesting (a 64 KiB body holds ~32,000 levels) must never recurse.
 */

/** Deeper JSON than this is refused before anything walks it recursively. */
export const maxJsonDepth = 32;

export function isStorableText(text: string): boolean {
  return !text.includes("\u0000") && text.isWellFormed();
}

export interface JsonInputProblem {
  readonly reason: "unstorable_text" | "too_deep";
  /** Where, as dotted keys and indexes ("" for the root); a bad key is reported at its object. */
  readonly path: string;
}

/** The first string or key we cannot store, or nesting past `maxDepth`; iterative, so any depth is safe. */
export function findJsonInputProblem(value: unknown, maxDepth = maxJsonDepth): JsonInputProblem | null {
  const pending: { value: unknown; depth: number; path: string }[] = [{ value, depth: 0, path: "" }];
  const join = (path: string, key: string | number) => (path === "" ? String(key) : `${path}.${key}`);
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { value: current, depth, path } = next;
    if (typeof current === "string") {
      if (!isStorableText(current)) return { reason: "unstorable_text", path };
      continue;
    }
    if (current === null || typeof current !== "object") continue;
    if (depth >= maxDepth) return { reason: "too_deep", path };
    if (Array.isArray(current)) {
      current.forEach((item, index) =>
        pending.push({ value: item, depth: depth + 1, path: join(path, index) })
      );
      continue;
    }
    for (const [key, inner] of Object.entries(current)) {
      if (!isStorableText(key)) return { reason: "unstorable_text", path };
      pending.push({ value: inner, depth: depth + 1, path: join(path, key) });
    }
  }
  return null;
}
