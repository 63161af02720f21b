/**
 * A batching helper for high-volume producers: events are queued and sent with the Batch RPC.
 *
 * A batch leaves when it holds `maxEvents` events, when its oldest event has waited `maxDelayMs`, on `flush()` and
 * on `close()`. Each event is encoded when queued, into the bytes of the Batch call that will carry it: it gets its
 * message id (`add` resolves to it), and an event that cannot be sent at all (no write key, a bad timestamp) makes
 * `add` reject. Nothing is encoded again when the batch leaves, nor when it is retried. The outcome of each event goes to
 * `onResult` (rejections are logged by default); a batch that fails as a whole, after the client's retries, goes to
 * `onError` (logged by default). `maxQueue` bounds the waiting events: `add` waits while the queue is full.
 */
import { status } from "@grpc/grpc-js";
import type { SidecarClient } from "./client";
import { SidecarError } from "./errors";
import type { BatchResult, SidecarEvent } from "./events";
import { EncodedBatch } from "./wire";

/** A batch being filled or sent: its encoded events, and the events as given (for the callbacks). */
interface Chunk {
  encoded: EncodedBatch;
  events: SidecarEvent[];
}

/** How to build a Batcher; every field is optional. */
export interface BatcherOptions {
  /** Events per Batch call (default 500). */
  maxEvents?: number;
  /** How long the oldest queued event may wait, in ms (default 500). */
  maxDelayMs?: number;
  /** Events that may wait at once; `add` waits beyond (default 10,000). */
  maxQueue?: number;
  /** Called with each event's outcome. */
  onResult?: (event: SidecarEvent, result: BatchResult) => void;
  /** Called with the events of a batch that failed as a whole. */
  onError?: (events: SidecarEvent[], error: SidecarError) => void;
}

function logRejection(_event: SidecarEvent, result: BatchResult): void {
  if (result.rejection) {
    console.warn(`segment-sidecar: event ${result.messageId} rejected: ${result.rejection.reason}`);
  }
}

function logFailure(events: SidecarEvent[], error: SidecarError): void {
  console.error(`segment-sidecar: batch of ${events.length} events failed: ${error.message}`);
}

/** Groups events into Batch calls of a SidecarClient. */
export class Batcher {
  private readonly maxEvents: number;
  private readonly maxDelayMs: number;
  private readonly maxQueue: number;
  private readonly onResult: NonNullable<BatcherOptions["onResult"]>;
  /** Whether onResult is the caller's: the default only logs rejections, so accepted events need no call. */
  private readonly everyResult: boolean;
  private readonly onError: NonNullable<BatcherOptions["onError"]>;
  private pending: Chunk;
  /** The previous batch's size in bytes, so that the next one's buffer rarely grows. */
  private lastBytes = 16 * 1024;
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();
  private closed = false;
  private spaceWaiters: (() => void)[] = [];

  constructor(
    private readonly client: SidecarClient,
    options: BatcherOptions = {},
  ) {
    this.maxEvents = options.maxEvents ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 500;
    this.maxQueue = options.maxQueue ?? 10_000;
    if (this.maxEvents < 1 || this.maxQueue < this.maxEvents) {
      throw new RangeError("need 1 <= maxEvents <= maxQueue");
    }
    this.onResult = options.onResult ?? logRejection;
    this.everyResult = options.onResult !== undefined;
    this.onError = options.onError ?? logFailure;
    this.pending = this.emptyChunk();
  }

  private emptyChunk(): Chunk {
    return { encoded: new EncodedBatch(this.lastBytes + 1024), events: [] };
  }

  /** Queue an event (waiting while the queue is full); resolves to its message id. */
  async add(event: SidecarEvent): Promise<string> {
    if (this.closed) {
      throw new Error("the batcher is closed");
    }
    while (this.pending.events.length >= this.maxQueue) {
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    const messageId = this.pending.encoded.add(event, this.client);
    this.pending.events.push(event);
    if (this.pending.events.length >= this.maxEvents) {
      this.dispatch();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.dispatch(), this.maxDelayMs);
    }
    return messageId;
  }

  /** Send everything queued now; resolves when it has been sent (accepted or refused by the sidecar). */
  async flush(): Promise<void> {
    while (this.pending.events.length > 0) {
      this.dispatch();
      await this.sending;
    }
    await this.sending;
  }

  /** Send what is queued, then refuse new events. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  /** Take the events due now (at most maxEvents: add dispatches at that count) and chain their sending. */
  private dispatch(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.events.length > 0) {
      const chunk = this.pending;
      this.lastBytes = chunk.encoded.byteLength;
      this.pending = this.emptyChunk();
      this.sending = this.sending.then(() => this.send(chunk));
    }
    for (const wake of this.spaceWaiters.splice(0)) {
      wake();
    }
  }

  /** Send one batch and report each outcome; never rejects, so the chain of sends lives on. */
  private async send(chunk: Chunk): Promise<void> {
    const ids = chunk.encoded.messageIds;
    // The callbacks get each event with the message id it was sent with; these copies are made only for them.
    const withId = (index: number): SidecarEvent => ({ ...chunk.events[index]!, messageId: ids[index]! });
    let results: BatchResult[];
    try {
      results = await this.client.batchEncoded(chunk.encoded);
    } catch (error) {
      // A failure that is not a gRPC status (a bug, a closed channel) still reaches onError.
      const failure = error instanceof SidecarError ? error : new SidecarError(status.UNKNOWN, String(error));
      this.onError(chunk.events.map((_, index) => withId(index)), failure);
      return;
    }
    results.forEach((result, index) => {
      if (this.everyResult || !result.ok) this.onResult(withId(index), result);
    });
  }
}
