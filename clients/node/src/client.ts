/** The promise-based client: one method per Spec call, retries inside, message ids made before the first attempt. */
import { type ChannelCredentials, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { CHANNEL_OPTIONS, resolveAddress } from "./address";
import {
  type Ack,
  type AliasFields,
  type AnyRequest,
  type BatchResult,
  type EventType,
  type FlushResult,
  type GroupFields,
  type IdentifyFields,
  type PageFields,
  type RegionName,
  type ScreenFields,
  type SidecarEvent,
  toRegion,
  toRequest,
  type TrackFields,
  warningsOf,
  withMessageId,
} from "./events";
import * as pb from "./gen/segment/sidecar/v1/sidecar";
import {
  type MessageOutcome,
  messageOutcomeOf,
  type Outcome,
  outcomeOf,
  startCursorOf,
  statusOf,
  toWriteKeyState,
  type WatchOptions,
  watchRequest,
  type WriteKeyPage,
  type WriteKeyStateName,
  type WriteKeyStatus,
} from "./outcomes";
import { Attempts, backoffMs, DEFAULT_FLUSH_TIMEOUT_MS, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS, type RetryPolicy } from "./retry";
import type { SidecarError } from "./errors";
import { translate } from "./status";
import { decodeBatchResults, EncodedBatch, encodeEntry } from "./wire";

/** How to build a SidecarClient; every field is optional. */
export interface SidecarClientOptions {
  /** `host:port` or `unix:/path`; default SIDECAR_ADDRESS, then 127.0.0.1:50051. */
  address?: string;
  /** Write key for calls that do not name their own. */
  writeKey?: string;
  /** Region for calls that do not name their own (default UNSPECIFIED: the sidecar's default region). */
  region?: RegionName;
  /** Milliseconds a call may take, all retries included (default 10,000). */
  timeoutMs?: number;
  /** Milliseconds a flush may take (default 60,000). */
  flushTimeoutMs?: number;
  /** How UNAVAILABLE, RESOURCE_EXHAUSTED and CANCELLED are retried (default DEFAULT_RETRY). */
  retry?: Partial<RetryPolicy>;
  /** Channel credentials (default insecure: the sidecar is local). */
  credentials?: ChannelCredentials;
}

/**
 * An event encoded for a Batch call, with its message id fixed (`SidecarClient.prepare`). `request` is the request
 * message, decoded from `bytes` when first read.
 */
export interface PreparedEvent {
  readonly type: EventType;
  readonly messageId: string;
  /** The event as one entry of a BatchRequest's `events` field, in wire form. */
  readonly bytes: Buffer;
  readonly request: AnyRequest;
}

class Prepared implements PreparedEvent {
  private decoded: AnyRequest | undefined;

  constructor(
    readonly type: EventType,
    readonly messageId: string,
    readonly bytes: Buffer,
  ) {}

  get request(): AnyRequest {
    this.decoded ??= pb.BatchRequest.decode(this.bytes).events[0]![this.type] as AnyRequest;
    return this.decoded;
  }
}

const BATCH_PATH = "/segment.sidecar.v1.SidecarService/Batch";
const asIs = (bytes: Buffer): Buffer => bytes;

/** Options of one call. */
export interface CallOptions {
  /** Milliseconds this call may take, all retries included. */
  timeoutMs?: number;
}

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: { deadline: Date },
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Wait `ms`, or less when `signal` aborts (the caller checks the signal afterwards). */
function sleepUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Which page of `listWriteKeys` to read. */
export interface ListWriteKeysOptions extends CallOptions {
  /** Only keys in this state (default every state). */
  state?: WriteKeyStateName;
  /** At most this many keys (default the sidecar's, 100). */
  pageSize?: number;
  /** The previous page's `nextPageToken`; empty for the first page. */
  pageToken?: string;
}

/**
 * A client of the sidecar. Share one per process: it holds one gRPC channel. Call `close()` when done.
 *
 * Each event gets a UUID message id before the first attempt; UNAVAILABLE, RESOURCE_EXHAUSTED and CANCELLED are
 * retried with it as retry.ts says (at most 5 attempts, waiting at least the server's RetryInfo, within the call's
 * deadline); INVALID_ARGUMENT is thrown at once as an
 * InvalidEventError with the field violations; anything else as a SidecarError.
 */
export class SidecarClient {
  readonly address: string;
  readonly writeKey: string | undefined;
  readonly region: RegionName | undefined;
  readonly timeoutMs: number;
  readonly flushTimeoutMs: number;
  readonly retry: RetryPolicy;
  private readonly stub: pb.SidecarServiceClient;
  private closed = false;

  constructor(options: SidecarClientOptions = {}) {
    this.address = resolveAddress(options.address);
    this.writeKey = options.writeKey;
    this.region = options.region;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.flushTimeoutMs = options.flushTimeoutMs ?? DEFAULT_FLUSH_TIMEOUT_MS;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.stub = new pb.SidecarServiceClient(
      this.address,
      options.credentials ?? credentials.createInsecure(),
      CHANNEL_OPTIONS,
    );
  }

  /** Close the channel. Idempotent. */
  close(): void {
    this.closed = true;
    this.stub.close();
  }

  private once<Req, Res>(method: Unary<Req, Res>, request: Req, timeoutMs: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(this.stub, request, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  /** Call `method`, retrying retryable failures until the deadline, and translate the final error. */
  private async invoke<Req, Res>(method: Unary<Req, Res>, request: Req, timeoutMs: number): Promise<Res> {
    const attempts = new Attempts(this.retry, timeoutMs);
    for (;;) {
      try {
        return await this.once(method, request, attempts.start());
      } catch (caught) {
        const error = translate(caught as ServiceError | Error);
        // A call cut short by close() was cancelled by its caller: not retried, whatever gRPC answered.
        const delay = this.closed ? undefined : attempts.waitBeforeNext(error);
        if (delay === undefined) {
          throw attempts.gaveUp(error, this.address);
        }
        await sleep(delay);
        if (this.closed) {
          throw attempts.gaveUp(error, this.address);
        }
      }
    }
  }

  private method(type: EventType): Unary<AnyRequest, { messageId: string; warnings: pb.Warning[] }> {
    return this.stub[type] as unknown as Unary<AnyRequest, { messageId: string; warnings: pb.Warning[] }>;
  }

  /** Send one event of any type; resolves to its Ack. */
  async send(event: SidecarEvent, options: CallOptions = {}): Promise<Ack> {
    const request = toRequest(withMessageId(event), this);
    const response = await this.invoke(this.method(event.type), request, options.timeoutMs ?? this.timeoutMs);
    return { messageId: response.messageId, warnings: warningsOf(response) };
  }

  /** Record that the user performed `event`. */
  track(fields: TrackFields, options?: CallOptions): Promise<Ack> {
    return this.send({ ...fields, type: "track" }, options);
  }

  /** Tie the user to `traits`. */
  identify(fields: IdentifyFields, options?: CallOptions): Promise<Ack> {
    return this.send({ ...fields, type: "identify" }, options);
  }

  /** Record a web page view. */
  page(fields: PageFields, options?: CallOptions): Promise<Ack> {
    return this.send({ ...fields, type: "page" }, options);
  }

  /** Record a mobile screen view. */
  screen(fields: ScreenFields, options?: CallOptions): Promise<Ack> {
    return this.send({ ...fields, type: "screen" }, options);
  }

  /** Associate the user with the group `groupId`. */
  group(fields: GroupFields, options?: CallOptions): Promise<Ack> {
    return this.send({ ...fields, type: "group" }, options);
  }

  /** Merge `previousId` into `userId`. */
  alias(fields: AliasFields, options?: CallOptions): Promise<Ack> {
    return this.send({ ...fields, type: "alias" }, options);
  }

  /**
   * Send events of mixed types in one call; one result per event, in order. An invalid event is rejected alone;
   * a capacity or shutdown failure fails the whole call, which is retried whole with the same message ids.
   */
  batch(events: SidecarEvent[], options: CallOptions = {}): Promise<BatchResult[]> {
    const batch = new EncodedBatch();
    try {
      for (const event of events) {
        batch.add(event, this);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.batchEncoded(batch, options);
  }

  /**
   * The event encoded for a Batch call: the client's write key and region filled in, a message id made. Throws at
   * once for an event that cannot be sent (no write key, a bad region or timestamp).
   */
  prepare(event: SidecarEvent): PreparedEvent {
    const { messageId, bytes } = encodeEntry(event, this);
    return new Prepared(event.type, messageId, bytes);
  }

  /** Send prepared events in one Batch call; one result per event, in order. */
  batchPrepared(prepared: PreparedEvent[], options: CallOptions = {}): Promise<BatchResult[]> {
    const body = Buffer.concat(prepared.map((p) => p.bytes));
    return this.sendBatch(body, prepared.map((p) => p.messageId), options);
  }

  /** Send a batch the Batcher or `batch` encoded (EncodedBatch is internal to the package); one result per event. */
  batchEncoded(batch: EncodedBatch, options: CallOptions = {}): Promise<BatchResult[]> {
    return this.sendBatch(batch.body(), batch.messageIds, options);
  }

  /** One Batch call whose request is `body`, already encoded, and whose response is read in place. */
  private async sendBatch(body: Buffer, messageIds: readonly string[], options: CallOptions): Promise<BatchResult[]> {
    const method: Unary<Buffer, Buffer> = (request, metadata, callOptions, callback) =>
      this.stub.makeUnaryRequest(BATCH_PATH, asIs, asIs, request, metadata, callOptions, (error, value) =>
        callback(error, value!),
      );
    const response = await this.invoke(method, body, options.timeoutMs ?? this.timeoutMs);
    return decodeBatchResults(response, messageIds);
  }

  /** Wait until the sidecar has delivered (or given up on) everything accepted before this call. */
  async flush(options: CallOptions = {}): Promise<FlushResult> {
    const method = this.stub.flush as unknown as Unary<pb.FlushRequest, pb.FlushResponse>;
    const response = await this.invoke(method, {}, options.timeoutMs ?? this.flushTimeoutMs);
    return {
      delivered: Number(response.delivered),
      deadLettered: Number(response.deadLettered),
      parked: Number(response.parked),
      parkedWriteKeyHashes: response.parkedWriteKeyHashes,
    };
  }

  /** What the sidecar knows of `writeKey` (default the client's) in `region`: state, backlog, dead letters. */
  async getWriteKeyStatus(writeKey?: string, region?: RegionName, options: CallOptions = {}): Promise<WriteKeyStatus> {
    const key = writeKey ?? this.writeKey;
    if (!key) throw new TypeError("getWriteKeyStatus needs a write key (none given, and the client has none)");
    const method = this.stub.getWriteKeyStatus as unknown as Unary<pb.GetWriteKeyStatusRequest, pb.GetWriteKeyStatusResponse>;
    const request = { writeKey: key, region: toRegion(region ?? this.region) };
    const response = await this.invoke(method, request, options.timeoutMs ?? this.timeoutMs);
    return statusOf(response.status!);
  }

  /** One page of every write key's status, named by fingerprint, ordered by fingerprint and region. */
  async listWriteKeys(options: ListWriteKeysOptions = {}): Promise<WriteKeyPage> {
    const method = this.stub.listWriteKeys as unknown as Unary<pb.ListWriteKeysRequest, pb.ListWriteKeysResponse>;
    const request = {
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? "",
      state: toWriteKeyState(options.state),
    };
    const response = await this.invoke(method, request, options.timeoutMs ?? this.timeoutMs);
    return { writeKeys: response.writeKeys.map(statusOf), nextPageToken: response.nextPageToken };
  }

  /** Every write key's status, page after page (one call per page): `for await (const key of client.writeKeys())`. */
  async *writeKeys(options: Omit<ListWriteKeysOptions, "pageToken"> = {}): AsyncGenerator<WriteKeyStatus, void, undefined> {
    let pageToken = "";
    do {
      const page = await this.listWriteKeys({ ...options, pageToken });
      yield* page.writeKeys;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Where one event is: waiting, in flight, delivered, dead-lettered, expired, or unknown within the window. */
  async getMessageOutcome(messageId: string, options: CallOptions & { writeKey?: string } = {}): Promise<MessageOutcome> {
    const method = this.stub.getMessageOutcome as unknown as Unary<pb.GetMessageOutcomeRequest, pb.GetMessageOutcomeResponse>;
    const request = { messageId, writeKey: options.writeKey ?? "" };
    return messageOutcomeOf(await this.invoke(method, request, options.timeoutMs ?? this.timeoutMs));
  }

  /**
   * Follow the outcome log: every record after `afterCursor` (empty: the oldest held), then new ones as they come.
   *
   *     for await (const outcome of sidecar.watchOutcomes({ afterCursor: saved, kinds: ["DEAD_LETTERED"] })) { ... }
   *
   * The watch resumes by itself: after UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED it did not cause, or a stream the
   * sidecar ended (a restart, a dropped connection), it reconnects with the cursor of the last record it yielded, so
   * nothing is missed and nothing comes twice. Before its first record it resumes from the cursor the sidecar said
   * the stream started after (its `outcome-start-cursor` header), so a `fromNow` or filtered watch lost early misses
   * nothing written meanwhile. It reconnects for as long as you iterate (no 5-attempt give-up), waiting as the
   * retry policy says (at most 2 s, at least the server's RetryInfo). Leave the loop, abort `signal`, or close the
   * client to stop. Throws CursorExpiredError (with `oldestCursor`) when the cursor is older than the window, and
   * SidecarError for any other failure.
   */
  async *watchOutcomes(options: WatchOptions = {}): AsyncGenerator<Outcome, void, undefined> {
    const signal = options.signal;
    let cursor = options.afterCursor ?? "";
    let failures = 0;
    while (!this.closed) {
      signal?.throwIfAborted();
      const call = this.stub.watchOutcomes(watchRequest(options, cursor));
      const cancel = () => call.cancel();
      signal?.addEventListener("abort", cancel, { once: true });
      // No cursor yet: a reconnect resumes where this stream started, not from now again. The headers come before
      // any record; a sidecar that sends no start cursor leaves the cursor empty.
      const onHeaders = (headers: Metadata) => {
        if (cursor === "") cursor = startCursorOf(headers);
      };
      if (cursor === "") call.once("metadata", onHeaders);
      let error: SidecarError | undefined;
      try {
        for await (const response of call as AsyncIterable<pb.WatchOutcomesResponse>) {
          const outcome = outcomeOf(response.outcome!);
          failures = 0;
          cursor = outcome.cursor;
          yield outcome;
        }
      } catch (caught) {
        error = translate(caught as ServiceError | Error);
      } finally {
        signal?.removeEventListener("abort", cancel);
        call.removeListener("metadata", onHeaders);
        call.cancel();
      }
      signal?.throwIfAborted();
      if (this.closed) return;
      if (error !== undefined && !error.retryable) throw error;
      failures += 1;
      await sleepUnlessAborted(Math.max(backoffMs(this.retry, failures), (error?.retryAfter ?? 0) * 1000), signal);
    }
  }
}
