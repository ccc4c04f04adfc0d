/**
 * The `billing-key` function: saved cards (keys.ts) and charges with them (charge.ts).
 *
 * Routes (the gateway passes the full path, `/functions/v1/billing-key/...`):
 *   POST   /billing-key            { billingKey }                  register, idempotent
 *   GET    /billing-key                                            the caller's active keys
 *   POST   /billing-key/{id}/pay   { orderId } + Idempotency-Key   charge an order
 *   DELETE /billing-key/{id}                                       delete, idempotent
 */
import { AppError } from "../infra/errors.ts";
import type { AppDeps } from "../infra/runtime.ts";
import { defineFunction, type EdgeFunction, json, readJson, replyJson } from "../infra/http.ts";
import { idempotencyKeyFrom, withIdempotency } from "../infra/idempotency.ts";
import { PayWithBillingKeyRequest, RegisterBillingKeyRequest } from "../contract/billing-key.ts";
import { deleteSavedBillingKey, listBillingKeys, registerBillingKey } from "./keys.ts";
import { lookBeforeCharge, payWithSavedBillingKey } from "./charge.ts";
import { ownBillingKey, ownOrder } from "../payments/ownership.ts";

// ---------------------------------------------------------------------------------------------------
// HTTP

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Route =
  | { readonly kind: "collection" }
  | { readonly kind: "item"; readonly id: string }
  | { readonly kind: "pay"; readonly id: string };

/**
 * The sub-path after `/billing-key` (the platform passes the full `/functions/v1/billing-key/...` path, a
 * local server just `/billing-key/...`). Anything else, including an id that is not a UUID, is not a
 * resource of ours: 404.
 */
export function routeOf(pathname: string): Route {
  const match = /(?:^|\/)billing-key(\/.*)?$/.exec(pathname);
  if (!match) throw new AppError("not_found", "No such route");
  const segments = (match[1] ?? "").split("/").filter((s) => s.length > 0);
  if (segments.length === 0) return { kind: "collection" };
  const [id, action, ...rest] = segments;
  if (!id || !uuidPattern.test(id) || rest.length > 0) throw new AppError("not_found", "No such route");
  if (action === undefined) return { kind: "item", id: id.toLowerCase() };
  if (action === "pay") return { kind: "pay", id: id.toLowerCase() };
  throw new AppError("not_found", "No such route");
}

function methodNotAllowed(method: string): never {
  throw new AppError("method_not_allowed", `Method ${method} is not allowed here`);
}

/** The `billing-key` function. */
export function billingKeyHandler(deps: AppDeps): EdgeFunction {
  return defineFunction({
    name: "billing-key",
    methods: ["GET", "POST", "DELETE"],
    auth: "user",
    verifyAccessToken: deps.verifyAccessToken,
    handle: async ({ request, url, caller }) => {
      const route = routeOf(url.pathname);
      const method = request.method;
      switch (route.kind) {
        case "collection":
          if (method === "GET") return json(await listBillingKeys(deps, caller));
          if (method === "POST") {
            return json(
              await registerBillingKey(deps, caller, await readJson(request, RegisterBillingKeyRequest)),
            );
          }
          return methodNotAllowed(method);
        case "item":
          if (method === "DELETE") return json(await deleteSavedBillingKey(deps, caller, route.id));
          return methodNotAllowed(method);
        case "pay": {
          if (method !== "POST") return methodNotAllowed(method);
          // a charge without a key could not be retried safely by the client, so the key is required
          const key = idempotencyKeyFrom(request);
          if (key === null) {
            throw new AppError("invalid_request", "An Idempotency-Key header is required to charge", {
              details: { field: "Idempotency-Key" },
            });
          }
          const input = await readJson(request, PayWithBillingKeyRequest);
          const scope = {
            userId: caller.userId,
            route: "billing-key-pay",
            key,
            request: { billingKeyId: route.id, ...input },
            // an unknown key or order is refused before the Idempotency-Key is claimed, so it writes nothing
            requires: [ownBillingKey(caller, route.id), ownOrder(caller, input.orderId)],
            // read beside the claim: the key's sealed value and the order's open browser attempts
            prefetch: lookBeforeCharge(caller, route.id, input.orderId),
          };
          return replyJson(
            await withIdempotency(
              deps.sql,
              scope,
              (look) => payWithSavedBillingKey(deps, caller, route.id, input, key, look),
            ),
          );
        }
      }
    },
  });
}
