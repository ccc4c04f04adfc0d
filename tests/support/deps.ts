// Test-only third-party packages, pinned exactly (runtime packages live in shared/infra/deps.ts).
export { Webhook as StandardWebhook } from "npm:standardwebhooks@1.1.1";
export * as jose from "npm:jose@6.2.18";
export { parse as parseToml } from "npm:smol-toml@1.9.1";
export { chromium } from "npm:playwright-core@1.65.1";
export { createClient } from "npm:@supabase/supabase-js@2.119.1";
export type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.1";
export { Ajv2020 } from "npm:ajv@8.20.0/dist/2020.js";
// The whole PortOne SDK, for the sandbox's conformance tests (functions import only the subpaths they use).
export * as PortOne from "npm:@portone/server-sdk@0.19.0";
