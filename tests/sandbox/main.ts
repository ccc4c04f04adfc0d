/**
 * Standalone sandbox (`deno task sandbox`). Config from env: SANDBOX_PORT, SANDBOX_CONTROL_PORT,
 * SANDBOX_WEBHOOK_URL, SANDBOX_TIME_FACTOR. Prints one JSON line with URLs and secrets, then runs
 * until SIGINT/SIGTERM.
 */
import { startSandbox } from "./sandbox.ts";

const env = (name: string) => Deno.env.get(name) || undefined;
const port = (name: string) => {
  const value = env(name);
  return value === undefined ? undefined : Number(value);
};

const sandbox = await startSandbox({
  port: port("SANDBOX_PORT"),
  controlPort: port("SANDBOX_CONTROL_PORT"),
  webhookUrl: env("SANDBOX_WEBHOOK_URL"),
  retryTimeFactor: env("SANDBOX_TIME_FACTOR") === undefined ? 1 : Number(env("SANDBOX_TIME_FACTOR")),
});

// deno-lint-ignore no-console
console.log(JSON.stringify({
  url: sandbox.url,
  controlUrl: sandbox.controlUrl,
  apiSecret: sandbox.apiSecret,
  storeId: sandbox.storeId,
  webhookSecret: sandbox.webhookSecret,
  channels: sandbox.channels,
}));

const stop = () => {
  void sandbox.close().then(() => Deno.exit(0));
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
