/** The batching helper against a real grpc-js server: grouping by size and time, flush, close, rejections. */
import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import { Batcher, type BatchResult, SidecarClient, type SidecarError } from "../src";
import { BAD_EVENT, type Scripted, startScripted } from "./scripted";

let server: Scripted;
let client: SidecarClient;

beforeEach(async () => {
  server = await startScripted();
  client = new SidecarClient({ address: server.address, writeKey: "wk", timeoutMs: 1000 });
});

afterEach(async () => {
  client.close();
  await server.stop();
});

const batchSizes = () => server.seen.filter((s) => s.method === "Batch").map((s) => s.request.events.length);

test("25 events with maxEvents 10 leave as 10, 10 and, on close, 5, in order", async () => {
  const batcher = new Batcher(client, { maxEvents: 10, maxDelayMs: 30_000 });
  const ids = [];
  for (let i = 0; i < 25; i++) {
    ids.push(await batcher.add({ type: "track", userId: "u", event: `E${i}` }));
  }
  await batcher.close();
  assert.deepEqual(batchSizes(), [10, 10, 5]);
  const sent = server.seen.flatMap((s) => s.request.events.map((e: { track: { messageId: string } }) => e.track.messageId));
  assert.deepEqual(sent, ids);
  await assert.rejects(batcher.add({ type: "track", userId: "u", event: "late" }), /closed/);
});

test("a lone event leaves after maxDelayMs without a flush", async () => {
  const batcher = new Batcher(client, { maxDelayMs: 200 });
  const started = performance.now();
  await batcher.add({ type: "track", userId: "u", event: "E" });
  while (batchSizes().length === 0 && performance.now() - started < 5000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const elapsed = performance.now() - started;
  await batcher.close();
  assert.deepEqual(batchSizes(), [1]);
  assert.ok(elapsed >= 150 && elapsed < 5000, `sent after ${elapsed} ms`);
});

test("rejections reach onResult and a batch failing as a whole reaches onError", async () => {
  const results: BatchResult[] = [];
  const failures: SidecarError[] = [];
  const batcher = new Batcher(client, {
    onResult: (_event, result) => results.push(result),
    onError: (_events, error) => failures.push(error),
  });
  await batcher.add({ type: "track", userId: "u", event: BAD_EVENT });
  await batcher.add({ type: "track", userId: "u", event: "Good" });
  await batcher.flush();
  server.failures.push({ code: status.INVALID_ARGUMENT, message: "whole batch refused" });
  await batcher.add({ type: "track", userId: "u", event: "Lost" });
  await batcher.close();
  assert.deepEqual(
    results.map((r) => r.ok),
    [false, true],
  );
  assert.equal(failures.length, 1);
  assert.equal(failures[0]!.code, status.INVALID_ARGUMENT);
});

test("add waits while the queue is full", async () => {
  const batcher = new Batcher(client, { maxEvents: 2, maxQueue: 2, maxDelayMs: 30_000 });
  await Promise.all(Array.from({ length: 7 }, (_, i) => batcher.add({ type: "track", userId: "u", event: `E${i}` })));
  await batcher.close();
  assert.equal(batchSizes().reduce((a, b) => a + b, 0), 7);
  assert.ok(batchSizes().every((size) => size <= 2));
});

test("an unsendable event rejects from add and the batcher keeps working", async () => {
  const keyless = new SidecarClient({ address: server.address });
  const batcher = new Batcher(keyless);
  await assert.rejects(batcher.add({ type: "track", userId: "u", event: "E" }), /writeKey is required/);
  await batcher.add({ type: "track", userId: "u", event: "E", writeKey: "wk" });
  await batcher.close();
  keyless.close();
  assert.deepEqual(batchSizes(), [1]);
});

test("a failure that is not a gRPC status reaches onError and flush still resolves", async () => {
  const failures: SidecarError[] = [];
  const closing = new SidecarClient({ address: server.address, writeKey: "wk" });
  const batcher = new Batcher(closing, { onError: (_events, error) => failures.push(error) });
  await batcher.add({ type: "track", userId: "u", event: "E" });
  closing.close();
  await batcher.flush();
  await batcher.add({ type: "track", userId: "u", event: "E2" });
  await batcher.close();
  assert.equal(failures.length, 2);
});
