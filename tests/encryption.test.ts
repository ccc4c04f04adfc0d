import assert from "node:assert/strict";
import { DecryptionError, isSealed, open, seal, sealedWithOlderKey } from "../shared/infra/encryption.ts";

const key = (id: string) => ({ id, key: crypto.getRandomValues(new Uint8Array(32)) });

Deno.test("seal()/open(): AES-GCM round trip for generated texts, never the plain text in the output", async () => {
  const keys = [key("k1")];
  for (let i = 0; i < 200; i++) {
    const plain = Array.from(
      { length: 1 + Math.floor(Math.random() * 300) },
      () => String.fromCodePoint(0x20 + Math.floor(Math.random() * 0xac00)),
    ).join("");
    const sealed = await seal(keys, plain, "ctx");
    assert.ok(isSealed(sealed));
    assert.ok(plain.length < 8 || !sealed.includes(plain));
    assert.equal(await open(keys, sealed, "ctx"), plain);
  }
  // a fresh IV each time: the same text never seals to the same value
  assert.notEqual(await seal(keys, "same", "ctx"), await seal(keys, "same", "ctx"));
});

Deno.test("open() refuses another context, a tampered value and an unknown key id", async () => {
  const keys = [key("k1")];
  const sealed = await seal(keys, "billing-key-secret", "billing_keys.billing_key:user-a");
  await assert.rejects(open(keys, sealed, "billing_keys.billing_key:user-b"), DecryptionError);
  const parts = sealed.split(".");
  const body = parts[3]!;
  const flipped = (body[0] === "A" ? "B" : "A") + body.slice(1);
  await assert.rejects(
    open(keys, [...parts.slice(0, 3), flipped].join("."), "billing_keys.billing_key:user-a"),
  );
  await assert.rejects(open([key("k2")], sealed, "billing_keys.billing_key:user-a"), DecryptionError);
  await assert.rejects(open(keys, "billing-key-plain", "x"), DecryptionError);
});

Deno.test("rotation: the newest key seals, older keys still open what they sealed", async () => {
  const old = key("2025");
  const current = key("2026");
  const sealedBefore = await seal([old], "secret", "c");
  const rotated = [current, old];
  assert.equal(await open(rotated, sealedBefore, "c"), "secret");
  assert.equal(sealedWithOlderKey(rotated, sealedBefore), true);
  const sealedAfter = await seal(rotated, "secret", "c");
  assert.match(sealedAfter, /^v1\.2026\./);
  assert.equal(sealedWithOlderKey(rotated, sealedAfter), false);
});
