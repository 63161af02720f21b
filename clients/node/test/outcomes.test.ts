/** The outcome API: the three calls, and a watch that resumes by itself, against a scripted grpc-js server. */
import {
  Metadata,
  Server,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  ServerCredentials,
  status,
} from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import { CursorExpiredError, SidecarClient } from "../src";
import { ErrorInfo } from "../src/gen/google/rpc/error_details";
import { Status } from "../src/gen/google/rpc/status";
import * as pb from "../src/gen/segment/sidecar/v1/sidecar";

/** DELIVERED records with cursors c1.. and message ids m1.. . */
function delivered(count: number): pb.Outcome[] {
  return Array.from({ length: count }, (_, i) => ({
    cursor: `c${i + 1}`,
    kind: pb.OutcomeKind.OUTCOME_KIND_DELIVERED,
    time: new Date(1_800_000_000_000),
    writeKeyFingerprint: "fp",
    region: pb.Region.REGION_US,
    messageId: `m${i + 1}`,
    deadLetterReason: "",
    segmentStatus: 200,
    segmentResponse: "",
  }));
}

/**
 * A scripted outcome server: the log, per-connection drops, a failure for every watch, and pages of keys. With
 * `startHeader` each watch names its start cursor in an `outcome-start-cursor` header, as the sidecar does ("c0"
 * before the first record); `writtenOnDrop` is appended to the log when a stream drops.
 */
interface OutcomeServer {
  address: string;
  log: pb.Outcome[];
  drops: number[];
  startHeader: boolean;
  writtenOnDrop: pb.Outcome[];
  fromNow: boolean[];
  failure: { code: status; message: string; metadata?: Metadata } | undefined;
  cursors: string[];
  pages: string[][];
  tokens: string[];
  stop(): Promise<void>;
}

async function startOutcomeServer(): Promise<OutcomeServer> {
  const server = new Server();
  const state: OutcomeServer = {
    address: "",
    log: [],
    drops: [],
    startHeader: false,
    writtenOnDrop: [],
    fromNow: [],
    failure: undefined,
    cursors: [],
    pages: [],
    tokens: [],
    stop: async () => {},
  };
  const live: ServerWritableStream<pb.WatchOutcomesRequest, pb.WatchOutcomesResponse>[] = [];
  server.addService(pb.SidecarServiceService, {
    watchOutcomes: (call: ServerWritableStream<pb.WatchOutcomesRequest, pb.WatchOutcomesResponse>) => {
      state.cursors.push(call.request.afterCursor);
      state.fromNow.push(call.request.fromNow);
      if (state.failure) {
        call.emit("error", { code: state.failure.code, details: state.failure.message, metadata: state.failure.metadata });
        return;
      }
      const after = call.request.afterCursor;
      let start = after ? state.log.findIndex((o) => o.cursor === after) + 1 : 0;
      if (after === "c0") start = 0;
      if (!after && call.request.fromNow) start = state.log.length;
      if (state.startHeader) {
        const headers = new Metadata();
        headers.set("outcome-start-cursor", start > 0 ? state.log[start - 1]!.cursor : "c0");
        call.sendMetadata(headers);
      }
      const drop = state.drops.shift();
      const records = state.log.slice(start, drop === undefined ? undefined : start + drop);
      for (const outcome of records) call.write({ outcome });
      if (drop !== undefined) {
        state.log = [...state.log, ...state.writtenOnDrop];
        state.writtenOnDrop = [];
        call.emit("error", { code: status.UNAVAILABLE, details: "scripted drop" });
        return;
      }
      live.push(call); // a live stream with nothing new: the client ends it
    },
    listWriteKeys: (call: ServerUnaryCall<pb.ListWriteKeysRequest, pb.ListWriteKeysResponse>, callback: sendUnaryData<pb.ListWriteKeysResponse>) => {
      state.tokens.push(call.request.pageToken);
      const index = Number(call.request.pageToken || 0);
      const writeKeys = state.pages[index]!.map((fingerprint) => ({ ...pb.WriteKeyStatus.fromPartial({ fingerprint, state: call.request.state }) }));
      callback(null, { writeKeys, nextPageToken: index + 1 < state.pages.length ? String(index + 1) : "" });
    },
    getWriteKeyStatus: (call: ServerUnaryCall<pb.GetWriteKeyStatusRequest, pb.GetWriteKeyStatusResponse>, callback: sendUnaryData<pb.GetWriteKeyStatusResponse>) => {
      const status = pb.WriteKeyStatus.fromPartial({
        fingerprint: `fp-${call.request.writeKey}`,
        region: call.request.region,
        state: pb.WriteKeyState.WRITE_KEY_STATE_REFUSED,
        stateSince: new Date(1_800_000_000_000),
        lastStatus: 401,
        deadLettersByReason: { parked_too_long: 2 },
      });
      callback(null, { status });
    },
    getMessageOutcome: (call: ServerUnaryCall<pb.GetMessageOutcomeRequest, pb.GetMessageOutcomeResponse>, callback: sendUnaryData<pb.GetMessageOutcomeResponse>) => {
      const outcome = state.log.find((o) => o.messageId === call.request.messageId);
      callback(
        null,
        pb.GetMessageOutcomeResponse.fromPartial(
          outcome ? { state: pb.MessageState.MESSAGE_STATE_DELIVERED, outcome } : { state: pb.MessageState.MESSAGE_STATE_UNKNOWN },
        ),
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  state.address = `127.0.0.1:${port}`;
  state.stop = async () => {
    for (const call of live) call.end();
    server.forceShutdown();
  };
  return state;
}

let server: OutcomeServer;
let client: SidecarClient;
const FAST = { initialBackoffMs: 10, maxBackoffMs: 50 };

beforeEach(async () => {
  server = await startOutcomeServer();
  client = new SidecarClient({ address: server.address, writeKey: "wk", region: "EU", retry: FAST });
});

afterEach(async () => {
  client.close();
  await server.stop();
});

test("a watch resumes after the last cursor when the stream drops, nothing twice", async () => {
  server.log = delivered(10);
  server.drops = [3, 0, 4];
  const ids: string[] = [];
  for await (const outcome of client.watchOutcomes({ kinds: ["DELIVERED"] })) {
    ids.push(outcome.messageId);
    assert.equal(outcome.kind, "DELIVERED");
    assert.equal(outcome.region, "US");
    if (ids.length === 10) break;
  }
  assert.deepEqual(ids, ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10"]);
  assert.deepEqual(server.cursors, ["", "c3", "c3", "c7"]);
});

test("a fromNow watch dropped before any record resumes after its start cursor, missing nothing", async () => {
  const log = delivered(5);
  server.log = log.slice(0, 3);
  server.writtenOnDrop = log.slice(3);
  server.startHeader = true;
  server.drops = [0];
  const ids: string[] = [];
  for await (const outcome of client.watchOutcomes({ fromNow: true, signal: AbortSignal.timeout(10_000) })) {
    ids.push(outcome.messageId);
    if (ids.length === 2) break;
  }
  assert.deepEqual(ids, ["m4", "m5"]);
  assert.deepEqual(server.cursors, ["", "c3"]);
  assert.deepEqual(server.fromNow, [true, false]);
});

test("a fromNow watch of an empty log dropped twice before any record resumes after c0", async () => {
  server.writtenOnDrop = delivered(1);
  server.startHeader = true;
  server.drops = [0, 0];
  for await (const outcome of client.watchOutcomes({ fromNow: true, signal: AbortSignal.timeout(10_000) })) {
    assert.equal(outcome.messageId, "m1");
    break;
  }
  assert.deepEqual(server.cursors, ["", "c0", "c0"]);
});

test("a watch keeps reconnecting past the 5 attempts of a call", async () => {
  server.log = delivered(1);
  server.drops = [0, 0, 0, 0, 0, 0, 0, 0];
  for await (const outcome of client.watchOutcomes()) {
    assert.equal(outcome.messageId, "m1");
    break;
  }
  assert.equal(server.cursors.length, 9);
});

test("aborting the signal ends a watch that waits for records", async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error("enough")), 100);
  await assert.rejects(
    (async () => {
      for await (const _ of client.watchOutcomes({ fromNow: true, signal: controller.signal })) {
        // nothing comes
      }
    })(),
    /enough/,
  );
});

function expired(message: string, oldest?: string) {
  if (oldest === undefined) return { code: status.OUT_OF_RANGE, message };
  const value = ErrorInfo.encode({ reason: "CURSOR_EXPIRED", domain: "", metadata: { oldest_cursor: oldest } }).finish();
  const rich = Status.encode({
    code: status.OUT_OF_RANGE,
    message,
    details: [{ typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(value) }],
  }).finish();
  const metadata = new Metadata();
  metadata.set("grpc-status-details-bin", Buffer.from(rich));
  return { code: status.OUT_OF_RANGE, message, metadata };
}

for (const [name, failure, oldest] of [
  ["an ErrorInfo detail", expired("cursor is older than the window", "c42"), "c42"],
  // The sidecar's words when its log is empty (an empty oldest_cursor): no cursor, not a word of the text.
  ["an empty log", expired("the oldest record held has cursor (none: the log is empty)", ""), undefined],
] as const) {
  test(`OUT_OF_RANGE throws CursorExpiredError with the oldest cursor from ${name}`, async () => {
    server.failure = failure;
    await assert.rejects(
      (async () => {
        for await (const _ of client.watchOutcomes({ afterCursor: "c1" })) {
          // nothing comes
        }
      })(),
      (error: unknown) => error instanceof CursorExpiredError && error.oldestCursor === oldest && error.codeName === "OUT_OF_RANGE",
    );
    assert.equal(server.cursors.length, 1);
  });
}

test("the three unary calls: a key's status, every page of keys, one message", async () => {
  server.log = delivered(2);
  server.pages = [["a", "b"], ["c"]];
  const key = await client.getWriteKeyStatus();
  assert.equal(key.fingerprint, "fp-wk");
  assert.equal(key.region, "EU");
  assert.equal(key.state, "REFUSED");
  assert.equal(key.stateSince?.getTime(), 1_800_000_000_000);
  assert.deepEqual(key.deadLettersByReason, { parked_too_long: 2 });
  const fingerprints: string[] = [];
  for await (const status of client.writeKeys({ state: "REFUSED", pageSize: 2 })) {
    assert.equal(status.state, "REFUSED");
    fingerprints.push(status.fingerprint);
  }
  assert.deepEqual(fingerprints, ["a", "b", "c"]);
  assert.deepEqual(server.tokens, ["", "1"]);
  const found = await client.getMessageOutcome("m2");
  assert.equal(found.state, "DELIVERED");
  assert.equal(found.outcome?.cursor, "c2");
  assert.equal((await client.getMessageOutcome("nope")).state, "UNKNOWN");
});
