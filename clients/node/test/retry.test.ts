/** Retries, deadlines and the typed error, against a real grpc-js server that fails as scripted. */
import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { InvalidEventError, SidecarClient, SidecarError } from "../src";
import { RETRYABLE_CODES } from "../src/errors";
import { DEFAULT_RETRY } from "../src/retry";
import { BAD_EVENT, type Scripted, startScripted } from "./scripted";

let server: Scripted;
let client: SidecarClient;

beforeEach(async () => {
  server = await startScripted();
  client = new SidecarClient({ address: server.address, writeKey: "wk" });
});

afterEach(async () => {
  client.close();
  await server.stop();
});

test("retries UNAVAILABLE then RESOURCE_EXHAUSTED (RetryInfo 300 ms) with one message id", async () => {
  server.failures.push({ code: status.UNAVAILABLE }, { code: status.RESOURCE_EXHAUSTED, retryDelayMs: 300 });
  const ack = await client.track({ userId: "u1", event: "Email Opened", properties: { n: 1 } });
  assert.deepEqual(
    server.seen.map((s) => s.method),
    ["Track", "Track", "Track"],
  );
  assert.deepEqual(new Set(server.seen.map((s) => s.request.messageId)), new Set([ack.messageId]));
  assert.match(ack.messageId, /^[0-9a-f-]{36}$/);
  assert.ok(server.seen[2]!.at - server.seen[1]!.at >= 290, "the RetryInfo delay was not honoured");
});

test("INVALID_ARGUMENT throws InvalidEventError with the field violations, without retrying", async () => {
  server.failures.push({ code: status.INVALID_ARGUMENT, message: "user_id: required", violations: [["user_id", "required"]] });
  await assert.rejects(client.track({ event: "Email Opened", messageId: "m-1" }), (error: unknown) => {
    assert.ok(error instanceof InvalidEventError);
    assert.equal(error.field, "user_id");
    assert.equal(error.violations[0]!.description, "required");
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.equal(error.codeName, "INVALID_ARGUMENT");
    return true;
  });
  assert.equal(server.seen.length, 1);
});

test("a batch failing as a whole is retried whole with the same message ids", async () => {
  server.failures.push({ code: status.RESOURCE_EXHAUSTED, retryDelayMs: 50 });
  const results = await client.batch([
    { type: "track", userId: "u", event: "A" },
    { type: "track", userId: "u", event: BAD_EVENT },
  ]);
  assert.deepEqual(
    results.map((r) => r.ok),
    [true, false],
  );
  assert.equal(results[1]!.rejection!.violations[0]!.field, "event");
  const sent = server.seen.map((s) => s.request.events.map((e: { track: { messageId: string } }) => e.track.messageId));
  const ids = results.map((r) => r.messageId);
  assert.deepEqual(sent, [ids, ids]);
});

test("a RetryInfo longer than the deadline ends the call with the retryable error at once", async () => {
  server.failures.push(...Array(3).fill({ code: status.RESOURCE_EXHAUSTED, retryDelayMs: 5000 }));
  const short = new SidecarClient({ address: server.address, writeKey: "wk", timeoutMs: 1000 });
  const started = performance.now();
  await assert.rejects(short.track({ userId: "u", event: "Email Opened" }), (error: unknown) => {
    assert.ok(error instanceof SidecarError);
    assert.equal(error.code, status.RESOURCE_EXHAUSTED);
    assert.ok(error.retryable);
    assert.equal(error.retryAfter, 5);
    return true;
  });
  short.close();
  assert.ok(performance.now() - started < 1000);
  assert.equal(server.seen.length, 1);
});

test("attempts are bounded by maxAttempts", async () => {
  server.failures.push(...Array(5).fill({ code: status.UNAVAILABLE }));
  const bounded = new SidecarClient({ address: server.address, writeKey: "wk", retry: { maxAttempts: 3 } });
  await assert.rejects(bounded.identify({ userId: "u", traits: { plan: "pro" } }), SidecarError);
  bounded.close();
  assert.equal(server.seen.length, 3);
});

test("FAILED_PRECONDITION is not retried", async () => {
  server.failures.push({ code: status.FAILED_PRECONDITION, message: "needs OAuth" });
  await assert.rejects(client.track({ userId: "u", event: "Email Opened" }), (error: unknown) => {
    assert.ok(error instanceof SidecarError && !(error instanceof InvalidEventError));
    assert.equal(error.retryable, false);
    return true;
  });
  assert.equal(server.seen.length, 1);
});

/** A loopback port nothing listens on: a sidecar that is not running. */
function closedPort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

test("the defaults are clients/retry-policy.json's, the one policy of the four clients", () => {
  const config = JSON.parse(readFileSync(join(__dirname, "..", "..", "..", "retry-policy.json"), "utf8"));
  const policy = config.methodConfig[0].retryPolicy;
  assert.equal(DEFAULT_RETRY.maxAttempts, policy.maxAttempts);
  assert.equal(DEFAULT_RETRY.initialBackoffMs, Number.parseFloat(policy.initialBackoff) * 1000);
  assert.equal(DEFAULT_RETRY.maxBackoffMs, Number.parseFloat(policy.maxBackoff) * 1000);
  assert.equal(DEFAULT_RETRY.multiplier, policy.backoffMultiplier);
  assert.deepEqual(
    new Set([...RETRYABLE_CODES].map((code) => status[code])),
    new Set(policy.retryableStatusCodes),
  );
});

test("with nothing listening: 5 attempts, given up within 3.0 s, naming the address and SIDECAR_ADDRESS", async () => {
  const address = `127.0.0.1:${await closedPort()}`;
  const nowhere = new SidecarClient({ address, writeKey: "wk" });
  const started = performance.now();
  let attempts = 0;
  await assert.rejects(nowhere.track({ userId: "u", event: "Email Opened" }), (error: unknown) => {
    assert.ok(error instanceof SidecarError);
    assert.equal(error.code, status.UNAVAILABLE, error.message);
    assert.match(error.message, new RegExp(`cannot connect to the sidecar at ${address}.*SIDECAR_ADDRESS`));
    assert.match(error.message, /gave up after 5 attempts/);
    attempts = error.attempts;
    return true;
  });
  nowhere.close();
  const took = performance.now() - started;
  console.log(`node: ${attempts} attempts, gave up after ${(took / 1000).toFixed(2)} s`);
  assert.equal(attempts, 5);
  assert.ok(took < 3500, `gave up after ${took} ms; the policy's bound is 3 s`);
});

test("CANCELLED that the caller did not cause is retried with the same message id", async () => {
  server.failures.push({ code: status.CANCELLED, message: "overloaded" });
  const ack = await client.track({ userId: "u", event: "Email Opened" });
  assert.deepEqual(
    server.seen.map((s) => s.request.messageId),
    [ack.messageId, ack.messageId],
  );
});

test("a grpc-retry-pushback-ms trailer delays the retry like a RetryInfo", async () => {
  server.failures.push({ code: status.UNAVAILABLE, pushbackMs: 400 });
  await client.track({ userId: "u", event: "Email Opened" });
  assert.equal(server.seen.length, 2);
  assert.ok(server.seen[1]!.at - server.seen[0]!.at >= 390, "the pushback was not honoured");
});

test("a call cut short by close() is not retried", async () => {
  server.failures.push({ code: status.UNAVAILABLE, retryDelayMs: 300 });
  const closing = new SidecarClient({ address: server.address, writeKey: "wk" });
  const call = closing.track({ userId: "u", event: "Email Opened" });
  while (server.seen.length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  closing.close();
  await assert.rejects(call, SidecarError);
  assert.equal(server.seen.length, 1);
});

test("SIDECAR_ADDRESS=unix:/path connects over a unix socket", async () => {
  const folder = mkdtempSync(join(tmpdir(), "sidecar-node-"));
  const address = `unix:${join(folder, "sidecar.sock")}`;
  const unix = await startScripted(address);
  const saved = process.env.SIDECAR_ADDRESS;
  process.env.SIDECAR_ADDRESS = address;
  try {
    const viaEnv = new SidecarClient({ writeKey: "wk" });
    assert.equal(viaEnv.address, address);
    const ack = await viaEnv.track({ userId: "u", event: "Email Opened", messageId: "given-id" });
    viaEnv.close();
    assert.equal(ack.messageId, "given-id");
    assert.equal(unix.seen[0]!.request.messageId, "given-id");
  } finally {
    if (saved === undefined) delete process.env.SIDECAR_ADDRESS;
    else process.env.SIDECAR_ADDRESS = saved;
    await unix.stop();
    rmSync(folder, { recursive: true, force: true }); // leave no folder behind in the system temp folder
  }
});
