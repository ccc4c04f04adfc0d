/**
 * What every function needs, built once per isolate from the environment. Handlers receive these as
 * arguments (tests pass their own: a scratch database, the PortOne sandbox, a local signing key).
 */
import { type ConfigNeed, readConfig } from "./config.ts";
import type { Config } from "./config.ts";
import { createSql, type Sql } from "./db.ts";
import { createPortOneGateway, type PortOneGateway } from "../portone/gateway.ts";
import { activeUserLookup, createAccessTokenVerifier, type VerifyAccessToken } from "./auth.ts";

export interface AppDeps {
  readonly config: Config;
  readonly sql: Sql;
  readonly portone: PortOneGateway;
  readonly verifyAccessToken: VerifyAccessToken;
}

export function createAppDeps(config: Config): AppDeps {
  const sql = createSql(config.database.url, {
    poolMax: config.database.poolMax,
    prepare: config.database.prepare,
  });
  return {
    config,
    sql,
    portone: createPortOneGateway(config.portone),
    verifyAccessToken: createAccessTokenVerifier({
      supabaseUrl: config.supabase.url,
      anonKey: config.supabase.anonKey,
      jwks: config.supabase.jwks,
      isActiveUser: activeUserLookup(sql),
    }),
  };
}

/**
 * Validates the environment at module load (a ConfigError naming every bad variable stops the function
 * from booting) and builds the dependencies.
 */
export function runtimeDeps(needs: readonly ConfigNeed[] = []): AppDeps {
  return createAppDeps(readConfig(Deno.env.toObject(), needs));
}
