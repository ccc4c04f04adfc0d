/** Cold-start floor: a module that imports postgres.js and zod and nothing else. */
import { postgres } from "../../../shared/infra/deps.ts";
import { z } from "../../../shared/infra/deps-client.ts";

export default {
  fetch(_request: Request): Promise<Response> {
    return Promise.resolve(new Response(JSON.stringify({ loaded: [typeof postgres, typeof z] })));
  },
};
