/**
 * The six Spec calls as plain objects, and their conversion into request messages.
 *
 * Object fields (`properties`, `traits`, `context`, `integrations`) take a plain object, sent as the `*Json` bytes of
 * its JSON (integers stay integers), or `asStruct(object)`, sent as a google.protobuf.Struct (numbers travel as
 * doubles; the sidecar turns whole numbers back into integers).
 */
import { randomUUID } from "node:crypto";
import * as pb from "./gen/segment/sidecar/v1/sidecar";

/** A JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object, such as an event's properties. */
export type JsonObject = { [key: string]: JsonValue | undefined };

/** An object to send as a google.protobuf.Struct rather than as JSON bytes; make one with `asStruct`. */
export class StructValue {
  constructor(readonly value: JsonObject) {}
}

/** Mark `value` to be sent as a google.protobuf.Struct. */
export function asStruct(value: JsonObject): StructValue {
  return new StructValue(value);
}

/** An object field: a plain object (JSON bytes) or a StructValue (Struct). */
export type ObjectField = JsonObject | StructValue;

/** The Segment region of the customer's workspace. */
export type RegionName = "US" | "EU" | "UNSPECIFIED" | "us" | "eu" | "unspecified";

/** Fields every call has; `writeKey` and `region` default to the client's. */
export interface CommonFields {
  userId?: string;
  anonymousId?: string;
  /** Made on the client (a UUID) when absent, so that a retried call keeps it. */
  messageId?: string;
  writeKey?: string;
  region?: RegionName;
  /** When the event happened: a Date or an RFC 3339 string. */
  timestamp?: Date | string;
  context?: ObjectField;
  integrations?: ObjectField;
}

/** A track call: the user performed `event`. */
export interface TrackFields extends CommonFields {
  event: string;
  properties?: ObjectField;
}
/** An identify call: the user has `traits`. */
export interface IdentifyFields extends CommonFields {
  traits?: ObjectField;
}
/** A page call: the user viewed web page `name`. */
export interface PageFields extends CommonFields {
  name?: string;
  category?: string;
  properties?: ObjectField;
}
/** A screen call: the user viewed app screen `name`. */
export interface ScreenFields extends CommonFields {
  name?: string;
  properties?: ObjectField;
}
/** A group call: the user belongs to `groupId`. */
export interface GroupFields extends CommonFields {
  groupId: string;
  traits?: ObjectField;
}
/** An alias call: `previousId` is now `userId`. */
export interface AliasFields extends CommonFields {
  previousId: string;
}

/** Any call, tagged with its type, as a batch takes them. */
export type SidecarEvent =
  | ({ type: "track" } & TrackFields)
  | ({ type: "identify" } & IdentifyFields)
  | ({ type: "page" } & PageFields)
  | ({ type: "screen" } & ScreenFields)
  | ({ type: "group" } & GroupFields)
  | ({ type: "alias" } & AliasFields);

/** The call types. */
export type EventType = SidecarEvent["type"];

/** A finding that did not stop the event. */
export interface Warning {
  code: string;
  field: string;
  message: string;
}

/** The sidecar accepted (durably spooled) the event under `messageId`. */
export interface Ack {
  messageId: string;
  warnings: Warning[];
}

/** Why an event of a batch was refused; `code` is the gRPC status number (3 is INVALID_ARGUMENT). */
export interface Rejection {
  code: number;
  reason: string;
  violations: { field: string; description: string }[];
}

/** The outcome of one event of a batch: accepted (`rejection` undefined) or rejected. */
export interface BatchResult {
  ok: boolean;
  messageId: string;
  rejection?: Rejection;
  warnings: Warning[];
}

/** What the sidecar reports after a flush. */
export interface FlushResult {
  delivered: number;
  deadLettered: number;
  parked: number;
  parkedWriteKeyHashes: string[];
}

/** A request message of any of the six calls. */
export type AnyRequest =
  | pb.TrackRequest
  | pb.IdentifyRequest
  | pb.PageRequest
  | pb.ScreenRequest
  | pb.GroupRequest
  | pb.AliasRequest;

/** A fresh message id (a UUID v4). */
export function newMessageId(): string {
  return randomUUID();
}

/** The event itself if it has a message id, else a copy with a new one. */
export function withMessageId<T extends CommonFields>(event: T): T {
  return event.messageId ? event : { ...event, messageId: newMessageId() };
}

/** The proto enum value of a region name (undefined means the client's default, then UNSPECIFIED). */
export function toRegion(region: RegionName | undefined): pb.Region {
  switch ((region ?? "UNSPECIFIED").toUpperCase()) {
    case "US":
      return pb.Region.REGION_US;
    case "EU":
      return pb.Region.REGION_EU;
    case "UNSPECIFIED":
      return pb.Region.REGION_UNSPECIFIED;
    default:
      throw new TypeError(`unknown region ${JSON.stringify(region)}: expected US, EU or UNSPECIFIED`);
  }
}

/** A Date from a Date or an RFC 3339 string; throws for anything else. */
export function toDate(value: Date | string): Date {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new TypeError(`invalid timestamp ${JSON.stringify(value)}: expected a Date or an RFC 3339 string`);
  }
  return date;
}

/** Encode a plain object as the bytes of a JSON object. */
export function toJsonBytes(value: JsonObject): Buffer {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError("expected a plain object");
  }
  return Buffer.from(JSON.stringify(value), "utf8");
}

type ObjectName = "context" | "integrations" | "properties" | "traits";

function setObject(request: Record<string, unknown>, name: ObjectName, value: ObjectField | undefined): void {
  if (value === undefined) {
    return;
  }
  if (value instanceof StructValue) {
    request[name] = value.value;
  } else {
    request[`${name}Json`] = toJsonBytes(value);
  }
}

/** Defaults a client applies to events that do not carry their own. */
export interface EventDefaults {
  writeKey?: string;
  region?: RegionName;
}

/**
 * The request message for `event` (which must already have a message id: `withMessageId`), with `writeKey` and
 * `region` falling back to `defaults`.
 */
export function toRequest(event: SidecarEvent, defaults: EventDefaults = {}): AnyRequest {
  const writeKey = event.writeKey ?? defaults.writeKey;
  if (!writeKey) {
    throw new TypeError("writeKey is required: pass it to the call or to the client");
  }
  const common = {
    writeKey,
    region: toRegion(event.region ?? defaults.region),
    userId: event.userId ?? "",
    anonymousId: event.anonymousId ?? "",
    messageId: event.messageId ?? "",
    timestamp: event.timestamp === undefined ? undefined : toDate(event.timestamp),
  };
  let request: Record<string, unknown>;
  switch (event.type) {
    case "track":
      request = { ...pb.TrackRequest.fromPartial({}), ...common, event: event.event ?? "" };
      setObject(request, "properties", event.properties);
      break;
    case "identify":
      request = { ...pb.IdentifyRequest.fromPartial({}), ...common };
      setObject(request, "traits", event.traits);
      break;
    case "page":
      request = { ...pb.PageRequest.fromPartial({}), ...common, name: event.name ?? "", category: event.category ?? "" };
      setObject(request, "properties", event.properties);
      break;
    case "screen":
      request = { ...pb.ScreenRequest.fromPartial({}), ...common, name: event.name ?? "" };
      setObject(request, "properties", event.properties);
      break;
    case "group":
      request = { ...pb.GroupRequest.fromPartial({}), ...common, groupId: event.groupId ?? "" };
      setObject(request, "traits", event.traits);
      break;
    case "alias":
      request = { ...pb.AliasRequest.fromPartial({}), ...common, previousId: event.previousId ?? "" };
      break;
    default:
      throw new TypeError(`unknown event type ${JSON.stringify((event as { type: unknown }).type)}`);
  }
  setObject(request, "context", event.context);
  setObject(request, "integrations", event.integrations);
  return request as unknown as AnyRequest;
}

/** Wrap a request of the given type in the BatchEvent oneof. */
export function toBatchEvent(type: EventType, request: AnyRequest): pb.BatchEvent {
  return { [type]: request } as pb.BatchEvent;
}

/** Warnings of a response or a batch result. */
export function warningsOf(message: { warnings: pb.Warning[] }): Warning[] {
  return message.warnings.map((w) => ({ code: w.code, field: w.field, message: w.message }));
}
