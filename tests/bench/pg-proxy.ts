/**
 * TCP proxies in front of PostgreSQL for the bench, loopback only:
 *
 * - a delaying proxy that holds every chunk for `delayMs` in each direction (a pooler or a database in the
 *   same region, instead of a database on the same machine);
 * - a counting proxy that reads the frontend (client → server) side of the PostgreSQL protocol and counts
 *   what a request costs at the wire: statements executed, transactions begun, Sync/Flush/Query messages,
 *   and round trips — a round trip being one wait of the client for the server: a message that makes the
 *   server answer (Sync, Flush, simple Query) sent while no answer is outstanding. Messages pipelined behind
 *   an outstanding one share its round trip, so pipelining shows up as fewer round trips.
 */

export interface WireCounts {
  /** Executes (extended protocol) plus statements sent as simple queries. */
  statements: number;
  /**
   * Transactions, each of which ends in a commit the server must make durable: explicit ones (`begin` …
   * `commit`) plus every statement sent outside of one (autocommit: its own transaction).
   */
  transactions: number;
  /** Parse messages: statements the server had to parse and plan (none for a cached prepared statement). */
  parses: number;
  syncs: number;
  flushes: number;
  simpleQueries: number;
  roundTrips: number;
  /** Connections opened through the proxy (startup included). */
  connections: number;
}

export function zeroCounts(): WireCounts {
  return {
    statements: 0,
    transactions: 0,
    parses: 0,
    syncs: 0,
    flushes: 0,
    simpleQueries: 0,
    roundTrips: 0,
    connections: 0,
  };
}

export interface PgProxy {
  readonly port: number;
  readonly url: string;
  /** Counts since the last reset (counting proxies only; zeros otherwise). */
  counts(): WireCounts;
  reset(): void;
  /** Closes every proxied connection (as if the server went away): the next query opens a new one. */
  dropConnections(): void;
  close(): Promise<void>;
}

const sslRequestCode = 80877103;
const gssRequestCode = 80877104;
const decoder = new TextDecoder();

function cString(bytes: Uint8Array, offset: number): [string, number] {
  let end = offset;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return [decoder.decode(bytes.subarray(offset, end)), end + 1];
}

const beginPattern = /^\s*(begin|start\s+transaction)\b/i;
const endPattern = /^\s*(commit|rollback|end|abort)\b/i;

/** Reads client → server messages of one connection and adds them to `counts`. */
class FrontendReader {
  #buffer = new Uint8Array(0);
  #startupDone = false;
  /** Statement name → text, from Parse messages, so a Bind of a prepared statement can be attributed. */
  #statements = new Map<string, string>();
  /** The statement (by name) bound to the unnamed portal, for the next Execute. */
  #boundText = "";
  awaitingAnswer = false;
  #inTransaction = false;

  constructor(private readonly counts: () => WireCounts) {}

  feed(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    let offset = 0;
    for (;;) {
      if (!this.#startupDone) {
        if (joined.length - offset < 8) break;
        const view = new DataView(joined.buffer, joined.byteOffset + offset);
        const length = view.getInt32(0);
        if (joined.length - offset < length) break;
        const code = view.getInt32(4);
        // an SSL or GSS request is answered with one byte and followed by the real startup message
        if (code !== sslRequestCode && code !== gssRequestCode) this.#startupDone = true;
        // the server answers each of these (S/N, or authentication and ReadyForQuery)
        this.#answerExpected();
        offset += length;
        continue;
      }
      if (joined.length - offset < 5) break;
      const type = String.fromCharCode(joined[offset]!);
      const length = new DataView(joined.buffer, joined.byteOffset + offset + 1).getInt32(0);
      if (joined.length - offset < 1 + length) break;
      this.#message(type, joined.subarray(offset + 5, offset + 1 + length));
      offset += 1 + length;
    }
    this.#buffer = joined.slice(offset);
  }

  #answerExpected(): void {
    if (!this.awaitingAnswer) {
      this.counts().roundTrips++;
      this.awaitingAnswer = true;
    }
  }

  #statement(text: string): void {
    const counts = this.counts();
    counts.statements++;
    if (beginPattern.test(text)) {
      this.#inTransaction = true;
      counts.transactions++;
    } else if (endPattern.test(text)) {
      this.#inTransaction = false;
    } else if (!this.#inTransaction) {
      counts.transactions++;
    }
  }

  #message(type: string, body: Uint8Array): void {
    const counts = this.counts();
    switch (type) {
      case "P": {
        const [name, next] = cString(body, 0);
        const [text] = cString(body, next);
        this.#statements.set(name, text);
        counts.parses++;
        break;
      }
      case "B": {
        const [, next] = cString(body, 0);
        const [statement] = cString(body, next);
        this.#boundText = this.#statements.get(statement) ?? "";
        break;
      }
      case "E":
        this.#statement(this.#boundText);
        break;
      case "Q": {
        const [text] = cString(body, 0);
        counts.simpleQueries++;
        // a simple query may carry several statements; ours never do, so one per message
        this.#statement(text);
        this.#answerExpected();
        break;
      }
      case "S":
        counts.syncs++;
        this.#answerExpected();
        break;
      case "H":
        counts.flushes++;
        this.#answerExpected();
        break;
      case "p":
        // a password or SASL message: the server answers it
        this.#answerExpected();
        break;
      default:
        // Describe, Close, Terminate: no effect on the counts
        break;
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** Copies one direction, holding each chunk until `delayMs` after it arrived. */
async function pump(
  from: Deno.Conn,
  to: Deno.Conn,
  delayMs: number,
  onChunk: (chunk: Uint8Array) => void,
): Promise<void> {
  const queue: { due: number; data: Uint8Array }[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const reading = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        const data = buffer.slice(0, n);
        onChunk(data);
        if (delayMs <= 0) {
          await writeAll(to, data);
        } else {
          queue.push({ due: performance.now() + delayMs, data });
          wake?.();
        }
      }
    } catch {
      // a reset on either side ends this direction
    } finally {
      ended = true;
      wake?.();
    }
  })();
  if (delayMs > 0) {
    try {
      for (;;) {
        const item = queue[0];
        if (!item) {
          if (ended) break;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        const wait = item.due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        queue.shift();
        await writeAll(to, item.data);
      }
    } catch {
      // the other side is gone
    }
  }
  await reading;
  try {
    await to.closeWrite();
  } catch {
    // already closed
  }
}

/**
 * Starts a proxy on 127.0.0.1 to `target` (a postgres:// URL on loopback); the returned `url` is `target`
 * with the proxy's port.
 */
export function startPgProxy(
  target: string,
  options: { delayMs?: number; count?: boolean } = {},
): PgProxy {
  const targetUrl = new URL(target);
  const targetPort = Number(targetUrl.port || 5432);
  const delayMs = options.delayMs ?? 0;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  let counts = zeroCounts();
  const open = new Set<Deno.Conn>();
  const sessions: Promise<void>[] = [];

  const serve = async (client: Deno.TcpConn) => {
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    } catch {
      client.close();
      return;
    }
    client.setNoDelay(true);
    server.setNoDelay(true);
    open.add(client);
    open.add(server);
    counts.connections++;
    const reader = options.count ? new FrontendReader(() => counts) : undefined;
    await Promise.all([
      pump(client, server, delayMs, (chunk) => reader?.feed(chunk)),
      pump(server, client, delayMs, () => {
        if (reader) reader.awaitingAnswer = false;
      }),
    ]);
    for (const conn of [client, server]) {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  };

  const accepting = (async () => {
    try {
      for await (const conn of listener) sessions.push(serve(conn as Deno.TcpConn));
    } catch {
      // listener closed
    }
  })();

  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    port,
    url: url.toString(),
    counts: () => ({ ...counts }),
    reset: () => {
      counts = zeroCounts();
    },
    dropConnections: () => {
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      open.clear();
    },
    close: async () => {
      listener.close();
      await accepting;
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await Promise.allSettled(sessions);
    },
  };
}
