/**
 * A loopback TCP forwarder in front of a real server, which a test can cut (every open connection dropped,
 * the port closed so new ones are refused, as when the server is down) and restore: the database going
 * away for one client, without touching the server other tests share.
 */
export interface TcpProxy extends AsyncDisposable {
  readonly port: number;
  /** `url` with its host and port pointing at the proxy. */
  readonly url: string;
  /** Drops every open connection and refuses new ones until `restore()`. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export function startTcpProxy(targetUrl: string): TcpProxy {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  let listener: Deno.Listener | null = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const open = new Set<Deno.Conn>();
  const pumps = new Set<Promise<void>>();
  const acceptLoops = new Set<Promise<void>>();

  const closeQuietly = (conn: Deno.Conn) => {
    open.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed by the other side
    }
  };

  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    try {
      await from.readable.pipeTo(to.writable, {
        preventClose: false,
        preventAbort: false,
        preventCancel: false,
      });
    } catch {
      // one side went away: the other is closed below
    }
    closeQuietly(from);
    closeQuietly(to);
  };

  const track = (promise: Promise<void>) => {
    pumps.add(promise);
    promise.finally(() => pumps.delete(promise));
  };

  const accept = (from: Deno.Listener) => {
    const loop = (async () => {
      for await (const client of from) {
        open.add(client);
        track((async () => {
          let server: Deno.Conn;
          try {
            server = await Deno.connect({ hostname: target.hostname, port: targetPort });
          } catch {
            closeQuietly(client);
            return;
          }
          open.add(server);
          await Promise.all([pipe(client, server), pipe(server, client)]);
        })());
      }
    })().catch(() => {});
    acceptLoops.add(loop);
  };
  accept(listener);

  const stopListening = () => {
    try {
      listener?.close();
    } catch {
      // closed already
    }
    listener = null;
  };

  const proxyUrl = new URL(targetUrl);
  proxyUrl.hostname = "127.0.0.1";
  proxyUrl.port = String(port);

  const proxy: TcpProxy = {
    port,
    url: proxyUrl.toString(),
    cut() {
      stopListening();
      for (const conn of [...open]) closeQuietly(conn);
    },
    restore() {
      if (listener) return;
      listener = Deno.listen({ hostname: "127.0.0.1", port });
      accept(listener);
    },
    async close() {
      stopListening();
      for (const conn of [...open]) closeQuietly(conn);
      await Promise.all([...acceptLoops]);
      await Promise.all([...pumps]);
    },
    [Symbol.asyncDispose]: () => proxy.close(),
  };
  return proxy;
}
