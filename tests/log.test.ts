import assert from "node:assert/strict";
import { log, setLogSink } from "../shared/infra/log.ts";

Deno.test("log() writes one JSON line and redacts secrets and personal data at any depth", () => {
  const lines: string[] = [];
  const restore = setLogSink((line) => lines.push(line));
  try {
    log("info", "example", {
      paymentId: "pay_1",
      headers: { Authorization: "Bearer eyJ.secret.token", apikey: "sb_secret_x" },
      customer: { ci: "CI-VALUE", di: "DI-VALUE", phoneNumber: "01012345678", birthDate: "1990-01-02" },
      cards: [{ cardNumber: "4111111111111111", billingKey: "billing-key-1" }],
      refundAccount: { number: "110123456789" },
      amount: 1000n,
      error: new Error("boom"),
    });
  } finally {
    restore();
  }
  assert.equal(lines.length, 1);
  const entry = JSON.parse(lines[0]!);
  assert.equal(entry.level, "info");
  assert.equal(entry.event, "example");
  assert.equal(entry.paymentId, "pay_1");
  assert.equal(entry.amount, "1000");
  assert.deepEqual(entry.error, { name: "Error", message: "boom" });
  for (
    const secret of [
      "eyJ.secret.token",
      "sb_secret_x",
      "CI-VALUE",
      "DI-VALUE",
      "01012345678",
      "1990-01-02",
      "4111111111111111",
      "billing-key-1",
      "110123456789",
    ]
  ) {
    assert.ok(!lines[0]!.includes(secret), `log line contains ${secret}`);
  }
});
