/**
 * A Node.js client for segment-sidecar: send Segment Spec calls to the local sidecar over gRPC.
 *
 *     const sidecar = new SidecarClient({ writeKey: "customer-write-key" });
 *     await sidecar.track({ userId: "user-1", event: "Email Opened", properties: { email_id: "e-1" } });
 *     for await (const outcome of sidecar.watchOutcomes({ afterCursor: saved })) { ... } // resumes by itself
 */
export { CHANNEL_OPTIONS, DEFAULT_ADDRESS, resolveAddress } from "./address";
export { Batcher, type BatcherOptions } from "./batcher";
export {
  type CallOptions,
  type ListWriteKeysOptions,
  type PreparedEvent,
  SidecarClient,
  type SidecarClientOptions,
} from "./client";
export { CursorExpiredError, type FieldViolation, InvalidEventError, RETRYABLE_CODES, SidecarError } from "./errors";
export {
  type MessageOutcome,
  type MessageStateName,
  type Outcome,
  type OutcomeKindName,
  type RegionValue,
  type WatchOptions,
  type WriteKeyPage,
  type WriteKeyStateName,
  type WriteKeyStatus,
} from "./outcomes";
export {
  type Ack,
  type AliasFields,
  asStruct,
  type BatchResult,
  type CommonFields,
  type EventType,
  type FlushResult,
  type GroupFields,
  type IdentifyFields,
  type JsonObject,
  type JsonValue,
  newMessageId,
  type ObjectField,
  type PageFields,
  type RegionName,
  type Rejection,
  type ScreenFields,
  type SidecarEvent,
  StructValue,
  type TrackFields,
  type Warning,
} from "./events";
export { DEFAULT_FLUSH_TIMEOUT_MS, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS, type RetryPolicy } from "./retry";
