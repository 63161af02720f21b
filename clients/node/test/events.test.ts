/** Turning events into request messages, and the retry arithmetic: pure code, no server. */
import { status } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { test } from "node:test";
import { asStruct, DEFAULT_ADDRESS, DEFAULT_RETRY, resolveAddress, SidecarError, type SidecarEvent } from "../src";
import { toBatchEvent, toRequest, withMessageId } from "../src/events";
import * as pb from "../src/gen/segment/sidecar/v1/sidecar";
import { Attempts, backoffMs } from "../src/retry";

test("plain-object properties are sent as JSON bytes with integers kept", () => {
  const request = toRequest(
    withMessageId({ type: "track", userId: "u", event: "E", properties: { count: 3, nested: { a: [1, 2.5] } } }),
    { writeKey: "wk" },
  ) as pb.TrackRequest;
  assert.deepEqual(JSON.parse(request.propertiesJson.toString()), { count: 3, nested: { a: [1, 2.5] } });
  assert.equal(request.properties, undefined);
  assert.equal(request.region, pb.Region.REGION_UNSPECIFIED);
  const wire = pb.TrackRequest.decode(pb.TrackRequest.encode(request).finish());
  assert.equal(wire.writeKey, "wk");
  assert.equal(wire.messageId.length, 36);
});

test("asStruct sends a google.protobuf.Struct and no JSON bytes", () => {
  const request = toRequest(withMessageId({ type: "identify", userId: "u", traits: asStruct({ plan: "pro", seats: 2 }) }), {
    writeKey: "wk",
    region: "eu",
  }) as pb.IdentifyRequest;
  const wire = pb.IdentifyRequest.decode(pb.IdentifyRequest.encode(request).finish());
  assert.deepEqual(wire.traits, { plan: "pro", seats: 2 });
  assert.equal(wire.traitsJson.length, 0);
  assert.equal(wire.region, pb.Region.REGION_EU);
});

test("event fields win over client defaults; timestamps take strings and Dates", () => {
  const request = toRequest(
    withMessageId({ type: "track", userId: "u", event: "E", writeKey: "own", region: "US", timestamp: "2026-01-02T03:04:05Z" }),
    { writeKey: "default", region: "eu" },
  ) as pb.TrackRequest;
  assert.equal(request.writeKey, "own");
  assert.equal(request.region, pb.Region.REGION_US);
  assert.equal(request.timestamp!.toISOString(), "2026-01-02T03:04:05.000Z");
  assert.throws(() => toRequest({ type: "track", event: "E", timestamp: "yesterday" }, { writeKey: "wk" }), /timestamp/);
});

test("a missing write key and an unknown region are refused before sending", () => {
  assert.throws(() => toRequest({ type: "track", event: "E" }), /writeKey is required/);
  assert.throws(() => toRequest({ type: "track", event: "E", region: "apac" as "US" }, { writeKey: "wk" }), /unknown region/);
});

test("message ids are made once and kept", () => {
  const bare: SidecarEvent = { type: "track", event: "E" };
  const made = withMessageId(bare);
  assert.match(made.messageId!, /^[0-9a-f-]{36}$/);
  assert.equal(withMessageId(made), made);
  const given: SidecarEvent = { type: "track", event: "E", messageId: "mine" };
  assert.equal(withMessageId(given).messageId, "mine");
});

test("each request lands in its member of the BatchEvent oneof", () => {
  const request = toRequest({ type: "alias", userId: "u", previousId: "p", messageId: "m" }, { writeKey: "wk" });
  const wire = pb.BatchEvent.decode(pb.BatchEvent.encode(toBatchEvent("alias", request)).finish());
  assert.equal(wire.alias!.previousId, "p");
});

test("the address is the argument, else SIDECAR_ADDRESS, else 127.0.0.1:50051", () => {
  assert.equal(resolveAddress(undefined, {}), DEFAULT_ADDRESS);
  assert.equal(resolveAddress(undefined, { SIDECAR_ADDRESS: "unix:/run/s.sock" }), "unix:/run/s.sock");
  assert.equal(resolveAddress("10.0.0.1:9", { SIDECAR_ADDRESS: "x:1" }), "10.0.0.1:9");
});

test("the retry wait honours RetryInfo and never plans past the deadline", () => {
  let now = 0;
  const attempts = new Attempts({ ...DEFAULT_RETRY, initialBackoffMs: 10 }, 5000, () => now);
  attempts.start();
  assert.equal(attempts.waitBeforeNext(new SidecarError(status.RESOURCE_EXHAUSTED, "full", 1.5)), 1500);
  assert.equal(attempts.waitBeforeNext(new SidecarError(status.RESOURCE_EXHAUSTED, "full", 10)), undefined);
  assert.equal(attempts.waitBeforeNext(new SidecarError(status.INVALID_ARGUMENT, "bad")), undefined);
  const wait = attempts.waitBeforeNext(new SidecarError(status.UNAVAILABLE, "down"))!;
  assert.ok(wait >= 0 && wait <= 10);
  now = 4995;
  assert.equal(attempts.waitBeforeNext(new SidecarError(status.UNAVAILABLE, "down")), undefined);
});

test("backoff bounds double per attempt up to maxBackoffMs", () => {
  const policy = { ...DEFAULT_RETRY, initialBackoffMs: 100, maxBackoffMs: 400 };
  for (const [attempt, bound] of [[1, 100], [2, 200], [3, 400], [6, 400]] as const) {
    for (let i = 0; i < 50; i++) {
      const wait = backoffMs(policy, attempt);
      assert.ok(wait >= 0 && wait <= bound);
    }
  }
});
