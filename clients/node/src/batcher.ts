/**
 * A batching helper for high-volume producers: events are queued and sent with the Batch RPC.
 *
 * A batch leaves when it holds `maxEvents` events, when its oldest event has waited `maxDelayMs`, on `flush()` and
 * on `close()`. Each event is converted when queued: it gets its message id (`add` resolves to it), and an event
 * that cannot be sent at all (no write key, a bad timestamp) makes `add` reject. The outcome of each event goes to
 * `onResult` (rejections are logged by default); a batch that fails as a whole, after the client's retries, goes to
 * `onError` (logged by default). `maxQueue` bounds the waiting events: `add` waits while the queue is full.
 */
import { status } from "@grpc/grpc-js";
import type { PreparedEvent, SidecarClient } from "./client";
import { SidecarError } from "./errors";
import type { BatchResult, SidecarEvent } from "./events";

interface Queued {
  event: SidecarEvent;
  prepared: PreparedEvent;
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
  private readonly onError: NonNullable<BatcherOptions["onError"]>;
  private pending: Queued[] = [];
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
    this.onError = options.onError ?? logFailure;
  }

  /** Queue an event (waiting while the queue is full); resolves to its message id. */
  async add(event: SidecarEvent): Promise<string> {
    if (this.closed) {
      throw new Error("the batcher is closed");
    }
    while (this.pending.length >= this.maxQueue) {
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    const prepared = this.client.prepare(event);
    this.pending.push({ event: { ...event, messageId: prepared.request.messageId }, prepared });
    if (this.pending.length >= this.maxEvents) {
      this.dispatch();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.dispatch(), this.maxDelayMs);
    }
    return prepared.request.messageId;
  }

  /** Send everything queued now; resolves when it has been sent (accepted or refused by the sidecar). */
  async flush(): Promise<void> {
    while (this.pending.length > 0) {
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

  /** Take the events due now, in batches of maxEvents, and chain their sending after the batch in flight. */
  private dispatch(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.pending.length > 0) {
      const chunk = this.pending.splice(0, this.maxEvents);
      this.sending = this.sending.then(() => this.send(chunk));
    }
    for (const wake of this.spaceWaiters.splice(0)) {
      wake();
    }
  }

  /** Send one batch and report each outcome; never rejects, so the chain of sends lives on. */
  private async send(chunk: Queued[]): Promise<void> {
    const events = chunk.map((queued) => queued.event);
    let results: BatchResult[];
    try {
      results = await this.client.batchPrepared(chunk.map((queued) => queued.prepared));
    } catch (error) {
      // A failure that is not a gRPC status (a bug, a closed channel) still reaches onError.
      const failure = error instanceof SidecarError ? error : new SidecarError(status.UNKNOWN, String(error));
      this.onError(events, failure);
      return;
    }
    results.forEach((result, index) => this.onResult(events[index]!, result));
  }
}
