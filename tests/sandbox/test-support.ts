/**
 * A webhook receiver for the sandbox tests: records every request raw (body text + plain header
 * object, exactly what verifiers need) and answers with a status chosen per request.
 */
export interface ReceivedWebhook {
  headers: Record<string, string>;
  body: string;
  receivedAtMs: number;
}

export interface Receiver {
  url: string;
  received: ReceivedWebhook[];
  /** Decides the answer for the n-th request (0-based); 200 when unset. */
  respond: (index: number, webhook: ReceivedWebhook) => number | Promise<number>;
  close(): Promise<void>;
}

export function startReceiver(respond?: Receiver["respond"]): Receiver {
  const received: ReceivedWebhook[] = [];
  const receiver: Receiver = {
    url: "",
    received,
    respond: respond ?? (() => 200),
    close: async () => {
      await server.shutdown();
    },
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const webhook = {
      headers: Object.fromEntries(req.headers),
      body: await req.text(),
      receivedAtMs: Date.now(),
    };
    const index = received.push(webhook) - 1;
    return new Response(null, { status: await receiver.respond(index, webhook) });
  });
  receiver.url = `http://127.0.0.1:${server.addr.port}/webhook`;
  return receiver;
}

/** Asserts the promise rejects with the SDK error class and `error.data.type`; returns the error. */
export async function rejectsWith<T extends Error & { data: unknown }>(
  promise: Promise<unknown>,
  errorClass: new (...args: never[]) => T,
  type: string,
): Promise<T> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof errorClass)) throw new Error(`expected ${errorClass.name}, got ${String(error)}`);
    const actual = (error.data as { type?: unknown }).type;
    if (actual !== type) throw new Error(`expected data.type ${type}, got ${String(actual)}`);
    return error;
  }
  throw new Error(`expected ${errorClass.name} with ${type}, but the call succeeded`);
}
