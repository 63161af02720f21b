/** Batch calls in wire form: the bytes built an event at a time are the generated code's bytes, and read back. */
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import { asStruct, Batcher, type BatchResult, SidecarClient, type SidecarEvent } from "../src";
import { toBatchEvent, toRequest } from "../src/events";
import * as pb from "../src/gen/segment/sidecar/v1/sidecar";
import { decodeBatchResults, EncodedBatch } from "../src/wire";
import { BAD_EVENT, type Scripted, startScripted } from "./scripted";

const props = { campaign_id: "cmp_1", link_count: 3, first_open: true, ratio: 0.25, nested: { tags: ["a", "<b>"] } };

/** Every event type, every kind of object field (JSON, Struct, none), non-ASCII text and long strings. */
const everyKind: SidecarEvent[] = [
  { type: "track", userId: "u1", anonymousId: "a1", event: "Email Opened", properties: props, region: "EU",
    timestamp: "2026-11-03T10:04:05.123Z", context: { ip: "10.0.0.1" }, integrations: { All: false } },
  { type: "identify", userId: "u1", messageId: "own-id", traits: asStruct({ plan: "pro", seats: 3 }) },
  { type: "page", userId: "ü-1", name: "Startseite ☕", category: "Docs", properties: { long: "x".repeat(300) } },
  { type: "screen", anonymousId: "a2", name: "Settings", integrations: asStruct({ Amplitude: true }) },
  { type: "group", userId: "u1", groupId: "g1", traits: { name: "ACME 😀" }, writeKey: "other", region: "us" },
  { type: "alias", userId: "u1", previousId: "a1", timestamp: new Date(-1500) },
  { type: "track", userId: "u2", event: "Nothing Else", properties: { big: "y".repeat(20_000) } },
];

test("an encoded batch is byte for byte the generated code's encoding of the same events", () => {
  const batch = new EncodedBatch(16);
  const ids = everyKind.map((event) => batch.add(event, { writeKey: "wk" }));
  assert.equal(ids[1], "own-id");
  const events = everyKind.map((event, index) =>
    toBatchEvent(event.type, toRequest({ ...event, messageId: ids[index] }, { writeKey: "wk" })),
  );
  assert.deepEqual(Buffer.from(batch.body()), Buffer.from(pb.BatchRequest.encode({ events }).finish()));
  assert.deepEqual(pb.BatchRequest.decode(batch.body()), pb.BatchRequest.decode(pb.BatchRequest.encode({ events }).finish()));
});

test("an event that cannot be sent throws and leaves the batch as it was", () => {
  const batch = new EncodedBatch();
  batch.add({ type: "track", userId: "u", event: "E" }, { writeKey: "wk" });
  const before = Buffer.from(batch.body());
  assert.throws(() => batch.add({ type: "track", userId: "u", event: "E", timestamp: "yesterday" }, { writeKey: "wk" }), /timestamp/);
  assert.throws(() => batch.add({ type: "track", userId: "u", event: "E" }), /writeKey/);
  assert.throws(() => batch.add({ type: "track", event: "E", properties: [1] as never }, { writeKey: "wk" }), /plain object/);
  assert.deepEqual(Buffer.from(batch.body()), before);
  assert.equal(batch.count, 1);
});

test("results are read from the response's bytes as the generated decoder reads them", () => {
  const response = pb.BatchResponse.encode({
    results: [
      { messageId: "id-1", warnings: [] },
      { messageId: "", rejected: { code: 3, reason: "event is required", fieldViolations: [{ field: "event", description: "required" }] }, warnings: [] },
      { messageId: "id-3", warnings: [{ code: "spec.property_type", field: "properties.x", message: "a number" }] },
      { messageId: "", warnings: [] },
    ],
    accepted: 3,
    rejected: 1,
  }).finish();
  const results: BatchResult[] = decodeBatchResults(Buffer.from(response), ["id-1", "id-2", "id-3", "id-4"]);
  assert.deepEqual(results, [
    { ok: true, messageId: "id-1", warnings: [] },
    { ok: false, messageId: "id-2", rejection: { code: 3, reason: "event is required", violations: [{ field: "event", description: "required" }] }, warnings: [] },
    { ok: true, messageId: "id-3", warnings: [{ code: "spec.property_type", field: "properties.x", message: "a number" }] },
    { ok: true, messageId: "id-4", warnings: [] },
  ]);
});

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

test("batch, prepare and the Batcher deliver the events the generated messages describe", async () => {
  const results = await client.batch([...everyKind, { type: "track", userId: "u", event: BAD_EVENT }]);
  assert.equal(results.length, everyKind.length + 1);
  assert.equal(results.at(-1)!.ok, false);
  const prepared = everyKind.map((event) => client.prepare(event));
  assert.deepEqual(prepared[0]!.request, toRequest({ ...everyKind[0]!, messageId: prepared[0]!.messageId }, client));
  await client.batchPrepared(prepared);
  const seen: string[] = [];
  const batcher = new Batcher(client, { maxEvents: everyKind.length, onResult: (event) => seen.push(event.messageId!) });
  const ids = [];
  for (const event of everyKind) ids.push(await batcher.add(event));
  await batcher.close();
  assert.deepEqual(seen, ids);
  const batches = server.seen.filter((s) => s.method === "Batch").map((s) => s.request as pb.BatchRequest);
  assert.equal(batches.length, 3);
  const sentIds = [results.map((r) => r.messageId), prepared.map((p) => p.messageId), ids];
  batches.forEach((batch, n) => {
    everyKind.forEach((event, index) => {
      const want = toBatchEvent(event.type, toRequest({ ...event, messageId: sentIds[n]![index] }, client));
      assert.deepEqual(batch.events[index], pb.BatchEvent.decode(pb.BatchEvent.encode(want).finish()));
    });
  });
});
