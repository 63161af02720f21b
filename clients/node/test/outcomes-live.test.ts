/**
 * WatchOutcomes against a real sidecar (the harness's `up --outcomes`: a disk spool, restarted on request): a watch
 * closed by its caller resumes from its cursor, a watch resumes by itself across a SIGKILL and restart, and every
 * event's DELIVERED record arrives once. A sidecar without the outcome API skips, saying so.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { newMessageId, type Outcome, SidecarClient, SidecarError } from "../src";
import { type Harness, startHarness, stopHarness } from "./harness";

const WRITE_KEY = "live-outcomes-key-node";

async function send(client: SidecarClient, count: number, prefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const ack = await client.track({ userId: "u-live", event: "Outcome Watched", messageId: `${prefix}-${newMessageId()}` });
    ids.push(ack.messageId);
  }
  return ids;
}

test("a watch resumes across a sidecar restart, every record once", { timeout: 180_000 }, async (t: TestContext) => {
  let harness: Harness;
  try {
    harness = await startHarness("--outcomes");
  } catch (error) {
    const reason = `conformance harness unavailable: ${(error as Error).message}`;
    if (process.env.TEST_REQUIRE_CONFORMANCE === "1") throw new Error(reason);
    t.skip(reason);
    return;
  }
  const client = new SidecarClient({ address: harness.address, writeKey: WRITE_KEY });
  try {
    try {
      await client.getMessageOutcome("probe");
    } catch (error) {
      if (error instanceof SidecarError && error.codeName === "UNIMPLEMENTED") {
        t.skip("the sidecar does not implement the outcome API (GetMessageOutcome, WatchOutcomes)");
        return;
      }
      throw error;
    }
    const filter = { writeKeys: [WRITE_KEY], kinds: ["DELIVERED" as const] };
    const want = await send(client, 10, "before");
    const got: Outcome[] = [];
    for await (const outcome of client.watchOutcomes(filter)) {
      got.push(outcome);
      if (got.length === 4) break; // the caller closes the stream
    }
    const resumeFrom = got[3]!.cursor;
    let sentinel = "";
    for await (const outcome of client.watchOutcomes({ ...filter, afterCursor: resumeFrom })) {
      got.push(outcome);
      if (got.length === 6 && sentinel === "") {
        const response = await fetch(harness.restartUrl, { method: "POST" });
        assert.equal(response.status, 200, await response.text());
        want.push(...(await send(client, 10, "after")));
        sentinel = (await send(client, 1, "sentinel"))[0]!;
        want.push(sentinel);
      }
      if (sentinel !== "" && outcome.messageId === sentinel) break;
    }
    const counts = new Map<string, number>();
    for (const outcome of got) {
      counts.set(outcome.messageId, (counts.get(outcome.messageId) ?? 0) + 1);
      assert.equal(outcome.kind, "DELIVERED");
    }
    assert.deepEqual([...counts.keys()].sort(), [...want].sort());
    assert.deepEqual([...counts.entries()].filter(([, n]) => n > 1), [], "a record came twice");
    const again: string[] = [];
    for await (const outcome of client.watchOutcomes({ ...filter, afterCursor: resumeFrom })) {
      again.push(outcome.messageId);
      if (outcome.messageId === sentinel) break;
    }
    assert.deepEqual(again, got.slice(4).map((o) => o.messageId));
  } finally {
    client.close();
    await stopHarness(harness);
  }
});
