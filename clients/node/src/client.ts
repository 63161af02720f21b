/** The promise-based client: one method per Spec call, retries inside, message ids made before the first attempt. */
import { type ChannelCredentials, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { CHANNEL_OPTIONS, resolveAddress } from "./address";
import {
  type Ack,
  type AliasFields,
  type AnyRequest,
  batchResults,
  type BatchResult,
  type EventType,
  type FlushResult,
  type GroupFields,
  type IdentifyFields,
  type PageFields,
  type RegionName,
  type ScreenFields,
  type SidecarEvent,
  toBatchEvent,
  toRequest,
  type TrackFields,
  warningsOf,
  withMessageId,
} from "./events";
import * as pb from "./gen/segment/sidecar/v1/sidecar";
import { Attempts, DEFAULT_FLUSH_TIMEOUT_MS, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS, type RetryPolicy } from "./retry";
import { translate } from "./status";

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

/** An event converted to its request message, ready for a Batch call (`SidecarClient.prepare`). */
export interface PreparedEvent {
  type: EventType;
  request: AnyRequest;
}

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
    let prepared: PreparedEvent[];
    try {
      prepared = events.map((event) => this.prepare(event));
    } catch (error) {
      return Promise.reject(error);
    }
    return this.batchPrepared(prepared, options);
  }

  /**
   * The request message for `event`: the client's write key and region filled in, a message id made. Throws at
   * once for an event that cannot be sent (no write key, a bad region or timestamp); the Batcher prepares each event
   * when it is queued, so such errors reach the producer.
   */
  prepare(event: SidecarEvent): PreparedEvent {
    return { type: event.type, request: toRequest(withMessageId(event), this) };
  }

  /** Send prepared events in one Batch call; one result per event, in order. */
  async batchPrepared(prepared: PreparedEvent[], options: CallOptions = {}): Promise<BatchResult[]> {
    const message: pb.BatchRequest = { events: prepared.map((p) => toBatchEvent(p.type, p.request)) };
    const method = this.stub.batch as unknown as Unary<pb.BatchRequest, pb.BatchResponse>;
    const response = await this.invoke(method, message, options.timeoutMs ?? this.timeoutMs);
    return batchResults(
      prepared.map((p) => p.request),
      response,
    );
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
}
