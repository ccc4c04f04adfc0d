/** Cold-start floor: a module that only imports zod (what every function loads at boot). */
import { z } from "../../../shared/infra/deps-client.ts";

export default {
  fetch(_request: Request): Promise<Response> {
    return Promise.resolve(new Response(JSON.stringify({ loaded: typeof z })));
  },
};
