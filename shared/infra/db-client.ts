/**
 * What keeps a function alive and working when PostgreSQL goes away and comes back (restart, failover,
 * crash), around two defects of postgres.js 3.4.9 (porsager/postgres #1154, #1066, #1208; the proposed
 * fixes #1168 and #1209 are unreleased; 3.4.9 is the newest version):
 *
 * 1. A transaction whose connection died gets a `ROLLBACK` written to that connection's socket, which is
 *    already null: an uncaught `TypeError: Cannot read properties of null (reading 'write')` from a timer
 *    (the process ends), or, when a reconnect raced it, bytes written ahead of the next startup message
 *    (the connection never works again). `begin()` below never lets that ROLLBACK happen.
 * 2. A connection keeps the state of the query it lost (the query, a FATAL error) across its reconnect,
 *    so the first request on the "new" connection fails with the old error. So on any lost connection
 *    the whole pool is swapped for a fresh one; the old pool finishes what it still can and is ended.
 *
 * A last net: should the TypeError of (1) still escape by another path, it is stopped from ending the
 * process, logged, and every pool is swapped (the connection that threw cannot be trusted again).
 */
import type { Sql } from "./deps.ts";
import { isConnectionLostError } from "./db-errors.ts";
import { log } from "./log.ts";

/** How long a transaction body's "connection lost" failure waits for postgres.js to notice the close. */
const connectionCloseGraceMs = 2_000;
/** How long a replaced pool may finish queries still running on its other connections. */
const retireSeconds = 2;

type AnyFunction = (...args: unknown[]) => unknown;

interface ReplaceableClient {
  /** Swaps the pool if `failed` is still the current one. */
  replace(failed: Sql, reason: string): void;
  /** Swaps the pool unconditionally (the stray-error net cannot tell which pool threw). */
  replaceCurrent(reason: string): void;
}

const liveClients = new Set<ReplaceableClient>();

/**
 * A `Sql` that forwards to the current postgres.js pool made by `connect`, and replaces that pool when a
 * query or transaction on it fails because its connection was lost.
 */
export function createReplaceableSql(connect: () => Sql): Sql {
  installStrayDriverErrorNet();
  let current = connect();
  const retiring = new Set<Promise<void>>();
  let ended = false;

  const client: ReplaceableClient = {
    replace(failed, reason) {
      if (failed !== current || ended) return;
      current = connect();
      log("warn", "database_connection_replaced", { reason });
      const retired = failed.end({ timeout: retireSeconds }).catch(() => {}).finally(() => {
        retiring.delete(retired);
      });
      retiring.add(retired);
    },
    replaceCurrent(reason) {
      client.replace(current, reason);
    },
  };
  liveClients.add(client);

  const noteFailure = (pool: Sql, error: unknown) => {
    if (isConnectionLostError(error)) {
      client.replace(pool, (error as { code?: string }).code ?? (error as Error).message);
    }
  };

  /** Watches a query's outcome without running it early (fragments are never awaited on their own). */
  const watch = <T>(pool: Sql, query: T): T => {
    if (
      query === null || typeof query !== "object" || typeof (query as { then?: unknown }).then !== "function"
    ) {
      return query;
    }
    const then = (query as unknown as Promise<unknown>).then;
    Object.defineProperty(query, "then", {
      configurable: true,
      writable: true,
      value(this: Promise<unknown>, onFulfilled?: AnyFunction, onRejected?: AnyFunction) {
        return then.call(this, onFulfilled, (error: unknown) => {
          noteFailure(pool, error);
          if (onRejected) return onRejected(error);
          throw error;
        });
      },
    });
    return query;
  };

  const end = async (options?: { timeout?: number }) => {
    ended = true;
    liveClients.delete(client);
    await Promise.all([current.end(options), ...retiring]);
  };

  const target = function () {} as unknown as Sql;
  return new Proxy(target, {
    apply(_target, _thisArg, args: unknown[]) {
      const pool = current;
      return watch(pool, (pool as unknown as AnyFunction)(...args));
    },
    get(_target, property) {
      const pool = current;
      if (property === "end") return end;
      if (property === "begin") {
        return (...args: unknown[]) => {
          const outcome = beginWithoutWritingToDeadConnections(pool, args);
          outcome.catch((error) => noteFailure(pool, error));
          return outcome;
        };
      }
      if (property === "unsafe") {
        return (...args: unknown[]) => watch(pool, (pool.unsafe as unknown as AnyFunction)(...args));
      }
      const value = Reflect.get(pool, property);
      return typeof value === "function" ? value.bind(pool) : value;
    },
  });
}

/**
 * `pool.begin(...args)`, except that a body which failed because the connection was lost holds its
 * failure until `begin()` itself has rejected on the close, and then never hands it to postgres.js: no
 * ROLLBACK is written to the dead connection (the server rolls back a transaction whose connection ended).
 * Only if the connection is still there after a grace period does the failure take the normal path.
 */
function beginWithoutWritingToDeadConnections(pool: Sql, args: unknown[]): Promise<unknown> {
  const body = args.pop() as (tx: unknown) => unknown;
  let settled = false;
  let onSettled: () => void = () => {};
  const settledSignal = new Promise<void>((resolve) => onSettled = resolve);
  const outcome = (pool.begin as unknown as (...a: unknown[]) => Promise<unknown>)(
    ...args,
    async (tx: unknown) => {
      try {
        return await body(tx);
      } catch (error) {
        if (isConnectionLostError(error)) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            settledSignal,
            new Promise((resolve) => timer = setTimeout(resolve, connectionCloseGraceMs)),
          ]);
          clearTimeout(timer);
          // begin() already rejected because the connection closed: a ROLLBACK now would hit a dead socket
          if (settled) await new Promise(() => {});
        }
        throw error;
      }
    },
  );
  const markSettled = () => {
    settled = true;
    onSettled();
  };
  outcome.then(markSettled, markSettled);
  return outcome;
}

let netInstalled = false;

/** The TypeError postgres.js throws from a timer when it writes to a connection whose socket is gone. */
export function isStrayDriverError(error: unknown): boolean {
  return error instanceof TypeError && /reading 'write'/.test(error.message) &&
    /postgres[\\/].*connection\.js/.test(error.stack ?? "");
}

function installStrayDriverErrorNet(): void {
  if (netInstalled || typeof globalThis.addEventListener !== "function") return;
  netInstalled = true;
  globalThis.addEventListener("error", (event: Event) => {
    const error = (event as ErrorEvent).error;
    if (!isStrayDriverError(error)) return;
    event.preventDefault();
    log("error", "database_driver_error_contained", { error });
    for (const client of liveClients) client.replaceCurrent("stray driver error");
  });
}
