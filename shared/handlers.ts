/**
 * The HTTP shape of each function: parse → one call → JSON. `supabase/functions/<name>/index.ts` binds
 * these to the runtime dependencies; tests bind them to a scratch database and the PortOne sandbox.
 */
import { confirmPayment, ConfirmRequest } from "./confirm.ts";
import { defineFunction, type EdgeFunction, json, readJson, replyJson } from "./http.ts";
import { idempotencyKeyFrom, withIdempotency } from "./idempotency.ts";
import { preparePayment, PrepareRequest } from "./prepare.ts";
import type { AppDeps } from "./runtime.ts";

export function prepareHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "prepare",
    methods: ["POST"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ request, caller }) => {
      const input = await readJson(request, PrepareRequest);
      const scope = {
        userId: caller.userId,
        route: "prepare",
        key: idempotencyKeyFrom(request),
        request: input,
      };
      return replyJson(await withIdempotency(deps.sql, scope, () => preparePayment(deps, caller, input)));
    },
  });
}

export function confirmHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "confirm",
    methods: ["POST"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ request, caller }) =>
      json(await confirmPayment(deps, caller, await readJson(request, ConfirmRequest))),
  });
}
