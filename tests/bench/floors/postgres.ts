/** Cold-start floor: a module that only imports postgres.js (what every function loads at boot). */
import { postgres } from "../../../shared/infra/deps.ts";

export default {
  fetch(_request: Request): Promise<Response> {
    return Promise.resolve(new Response(JSON.stringify({ loaded: typeof postgres })));
  },
};
