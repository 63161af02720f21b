/**
 * The shared conformance scenario (clients/conformance) run with this client against a real sidecar and two local
 * collectors started by the harness. Without a Python that has the sidecar package the test skips, saying why,
 * unless TEST_REQUIRE_CONFORMANCE=1, when it fails.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import {
  asStruct,
  type BatchResult,
  type EventType,
  InvalidEventError,
  type JsonObject,
  SidecarClient,
  SidecarError,
  type SidecarEvent,
} from "../src";
import { type Harness, startHarness, stopHarness } from "./harness";

const OBJECT_FIELDS = new Set(["properties", "traits", "context", "integrations"]);

type Expect = { ok: boolean; code?: string; field?: string };
type Step = { call: EventType | "batch"; request: Record<string, unknown>; events?: Step[]; expect: Expect & { results?: Expect[] } };
type Scenario = { steps: Step[] };

const camel = (name: string) => name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** The client's event from a scenario request: JSON objects as plain objects or, when asked, as Structs. */
function eventOf(call: EventType, request: Record<string, unknown>): SidecarEvent {
  const fields: Record<string, unknown> = { type: call };
  for (const [key, value] of Object.entries(request)) {
    if (key.endsWith("_as")) continue;
    const asStructField = OBJECT_FIELDS.has(key) && request[`${key}_as`] === "struct";
    fields[camel(key)] = asStructField ? asStruct(value as JsonObject) : value;
  }
  return fields as unknown as SidecarEvent;
}

function checkError(error: unknown, expect: Expect): void {
  assert.ok(error instanceof SidecarError, String(error));
  assert.equal(expect.ok, false, `expected success, got ${error.message}`);
  assert.equal(error.codeName, expect.code);
  assert.ok(error instanceof InvalidEventError);
  assert.equal(error.field, expect.field);
}

function checkBatch(results: BatchResult[], sent: SidecarEvent[], expect: Expect[]): void {
  assert.equal(results.length, expect.length);
  results.forEach((result, index) => {
    const want = expect[index]!;
    if (want.ok) {
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.messageId, sent[index]!.messageId);
    } else {
      assert.ok(result.rejection, JSON.stringify(result));
      assert.equal(result.rejection.code, 3); // INVALID_ARGUMENT, the only code a batch rejection expects
      assert.equal(want.code, "INVALID_ARGUMENT");
      assert.equal(result.rejection.violations[0]?.field, want.field);
    }
  });
}

test("the conformance scenario reaches the collectors exactly as expected", { timeout: 180_000 }, async (t: TestContext) => {
  let harness: Harness;
  try {
    harness = await startHarness();
  } catch (error) {
    const reason = `conformance harness unavailable: ${(error as Error).message}`;
    if (process.env.TEST_REQUIRE_CONFORMANCE === "1") throw new Error(reason);
    t.skip(reason);
    return;
  }
  const client = new SidecarClient({ address: harness.address });
  try {
    for (const step of (harness.scenario as Scenario).steps) {
      if (step.call === "batch") {
        const events = step.events!.map((item) => eventOf(item.call as EventType, item.request));
        checkBatch(await client.batch(events), events, step.expect.results!);
        continue;
      }
      try {
        const ack = await client.send(eventOf(step.call, step.request));
        assert.ok(step.expect.ok, `${step.request.message_id} was accepted`);
        assert.equal(ack.messageId, step.request.message_id);
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        checkError(error, step.expect);
      }
    }
    await client.flush();
    const response = await fetch(harness.checkUrl, { method: "POST" });
    const verdict = (await response.json()) as { ok: boolean; diff?: string };
    assert.ok(verdict.ok, verdict.diff);
  } finally {
    client.close();
    await stopHarness(harness);
  }
});
