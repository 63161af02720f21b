/**
 * Batch calls in wire form: each event is encoded once, when it is queued, straight into the bytes of the
 * BatchRequest that will carry it, and the call sends those bytes as they are (a retry re-sends them).
 *
 * A BatchRequest is nothing but its repeated `events` field (number 1), and a repeated message field is its entries
 * end to end, so a batch grows by appending one entry per event: the entry's tag and length, the BatchEvent's oneof
 * tag and length, then the request message's fields in field-number order, defaults left out, exactly as the
 * generated encoder writes them. The six request messages share their fields 1-10 (sidecar.proto, "Common fields")
 * and differ only from field 16 on, which `OWN_FIELDS` lists. The tests decode these bytes with the generated code
 * and compare them with its own encoding of the same events, so a change of the .proto that this table misses fails
 * them.
 *
 * Responses are read without building a message per result: an accepted event's entry is only its message id.
 */
import { Struct } from "./gen/google/protobuf/struct";
import { Timestamp } from "./gen/google/protobuf/timestamp";
import * as pb from "./gen/segment/sidecar/v1/sidecar";
import {
  type BatchResult,
  type EventDefaults,
  type EventType,
  newMessageId,
  type ObjectField,
  type SidecarEvent,
  StructValue,
  toDate,
  toRegion,
  warningsOf,
} from "./events";

/** A string field, or an object field given as (Struct field, JSON bytes field), of one event type. */
type OwnField = readonly [name: string, field: number] | readonly [name: string, structField: number, jsonField: number];

/** Each event type's BatchEvent oneof number and its own fields (16 on), in field-number order. */
const OWN_FIELDS: Record<EventType, { oneof: number; fields: readonly OwnField[] }> = {
  track: { oneof: 1, fields: [["event", 16], ["properties", 17, 18]] },
  identify: { oneof: 2, fields: [["traits", 16, 17]] },
  page: { oneof: 3, fields: [["name", 16], ["category", 17], ["properties", 18, 19]] },
  screen: { oneof: 4, fields: [["name", 16], ["properties", 17, 18]] },
  group: { oneof: 5, fields: [["groupId", 16], ["traits", 17, 18]] },
  alias: { oneof: 6, fields: [["previousId", 16]] },
};

const LENGTH_DELIMITED = 2;
/** Room left before an event's fields for its two tags and two lengths (each length at most 5 bytes). */
const HEADER_ROOM = 12;

function varintSize(value: number): number {
  let size = 1;
  while (value > 127) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/** The events of one Batch call, encoded as its BatchRequest, with their message ids in order. */
export class EncodedBatch {
  private buffer: Buffer;
  private pos = 0;
  readonly messageIds: string[] = [];

  constructor(capacity = 16 * 1024) {
    this.buffer = Buffer.allocUnsafe(capacity);
  }

  /** Events so far. */
  get count(): number {
    return this.messageIds.length;
  }

  /** Bytes so far. */
  get byteLength(): number {
    return this.pos;
  }

  /** The BatchRequest's bytes (a view, valid until the next `add`). */
  body(): Buffer {
    return this.buffer.subarray(0, this.pos);
  }

  /**
   * Append `event`, with its own message id or a new one, and return that id. Throws, leaving the batch as it was,
   * for an event that cannot be sent (no write key, a bad region or timestamp, an object field that is not one).
   */
  add(event: SidecarEvent, defaults: EventDefaults = {}): string {
    const own = OWN_FIELDS[event.type];
    if (own === undefined) {
      throw new TypeError(`unknown event type ${JSON.stringify((event as { type: unknown }).type)}`);
    }
    const writeKey = event.writeKey ?? defaults.writeKey;
    if (!writeKey) {
      throw new TypeError("writeKey is required: pass it to the call or to the client");
    }
    const region = toRegion(event.region ?? defaults.region);
    const timestamp = event.timestamp === undefined ? undefined : toDate(event.timestamp);
    const messageId = event.messageId || newMessageId();
    const entryStart = this.pos;
    try {
      this.ensure(HEADER_ROOM);
      this.pos += HEADER_ROOM;
      const fieldsStart = this.pos;
      this.string(1, writeKey);
      if (region !== 0) {
        this.tag(2, 0);
        this.varint(region);
      }
      this.string(3, event.userId ?? "");
      this.string(4, event.anonymousId ?? "");
      this.string(5, messageId);
      if (timestamp !== undefined) {
        // As the generated code converts a Date (its toTimestamp), so both encode the same bytes.
        const millis = timestamp.getTime();
        this.message(6, Timestamp.encode({ seconds: Math.trunc(millis / 1_000), nanos: (millis % 1_000) * 1_000_000 }).finish());
      }
      this.object(7, 8, event.context);
      this.object(9, 10, event.integrations);
      const fields = event as unknown as Record<string, unknown>;
      for (const field of own.fields) {
        if (field.length === 2) {
          this.string(field[1], (fields[field[0]] as string | undefined) ?? "");
        } else {
          this.object(field[1], field[2], fields[field[0]] as ObjectField | undefined);
        }
      }
      this.frame(entryStart, fieldsStart, own.oneof);
    } catch (error) {
      this.pos = entryStart;
      throw error;
    }
    this.messageIds.push(messageId);
    return messageId;
  }

  /** Write the entry's tags and lengths just before its fields, and close the gap left by HEADER_ROOM. */
  private frame(entryStart: number, fieldsStart: number, oneof: number): void {
    const fieldsLength = this.pos - fieldsStart;
    const eventLength = 1 + varintSize(fieldsLength) + fieldsLength;
    const headerLength = 1 + varintSize(eventLength) + 1 + varintSize(fieldsLength);
    const end = this.pos;
    this.pos = entryStart;
    this.tag(1, LENGTH_DELIMITED);
    this.varint(eventLength);
    this.tag(oneof, LENGTH_DELIMITED);
    this.varint(fieldsLength);
    if (headerLength < HEADER_ROOM) {
      this.buffer.copyWithin(this.pos, fieldsStart, end);
    }
    this.pos = entryStart + headerLength + fieldsLength;
  }

  private ensure(extra: number): void {
    if (this.pos + extra > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.pos + extra));
      this.buffer.copy(grown, 0, 0, this.pos);
      this.buffer = grown;
    }
  }

  private varint(value: number): void {
    while (value > 127) {
      this.buffer[this.pos++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buffer[this.pos++] = value;
  }

  private tag(field: number, wireType: number): void {
    this.ensure(HEADER_ROOM);
    this.varint(field * 8 + wireType);
  }

  /** A string field; the empty string is the default and is left out. */
  private string(field: number, value: string): void {
    if (value === "") {
      return;
    }
    const length = Buffer.byteLength(value, "utf8");
    this.tag(field, LENGTH_DELIMITED);
    this.varint(length);
    this.ensure(length);
    this.pos += this.buffer.write(value, this.pos, length, "utf8");
  }

  /** A message field, written even when empty (as the generated code writes a set message field). */
  private message(field: number, bytes: Uint8Array): void {
    this.tag(field, LENGTH_DELIMITED);
    this.varint(bytes.length);
    this.ensure(bytes.length);
    this.buffer.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** An object field: a StructValue as a Struct, a plain object as the bytes of its JSON. */
  private object(structField: number, jsonField: number, value: ObjectField | undefined): void {
    if (value === undefined) {
      return;
    }
    if (value instanceof StructValue) {
      this.message(structField, Struct.encode(Struct.wrap(value.value)).finish());
      return;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new TypeError("expected a plain object");
    }
    this.string(jsonField, JSON.stringify(value));
  }
}

/** One event on its own, as the entry a BatchRequest carries (`SidecarClient.prepare`). */
export function encodeEntry(event: SidecarEvent, defaults: EventDefaults): { messageId: string; bytes: Buffer } {
  const one = new EncodedBatch(1024);
  const messageId = one.add(event, defaults);
  return { messageId, bytes: Buffer.from(one.body()) };
}

/**
 * One BatchResult per message id, in order, read from the BatchResponse's bytes. A result that is only a message id
 * (an accepted event without warnings) is read in place; any other is decoded by the generated code.
 */
export function decodeBatchResults(response: Buffer, messageIds: readonly string[]): BatchResult[] {
  const results: BatchResult[] = [];
  let pos = 0;
  const readVarint = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = response[pos++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  };
  while (pos < response.length) {
    const tag = readVarint();
    const wireType = tag & 7;
    if (tag !== 8 * 1 + LENGTH_DELIMITED) {
      // accepted/rejected counts, or a field this client does not know: skip it.
      if (wireType === 0) readVarint();
      else if (wireType === LENGTH_DELIMITED) pos += readVarint();
      else if (wireType === 1) pos += 8;
      else if (wireType === 5) pos += 4;
      else throw new Error(`BatchResponse: unexpected wire type ${wireType}`);
      continue;
    }
    const length = readVarint();
    const end = pos + length;
    const messageId = messageIds[results.length] ?? "";
    if (length > 0 && response[pos] === 8 * 1 + LENGTH_DELIMITED) {
      pos++;
      const idLength = readVarint();
      if (pos + idLength === end) {
        const sent = response.toString("utf8", pos, end);
        results.push({ ok: true, messageId: sent || messageId, warnings: [] });
        pos = end;
        continue;
      }
    }
    results.push(resultOf(pb.BatchResult.decode(response.subarray(end - length, end)), messageId));
    pos = end;
  }
  return results;
}

/** A BatchResult from a decoded result; a rejected event keeps the message id it was sent with. */
export function resultOf(result: pb.BatchResult, messageId: string): BatchResult {
  if (result.rejected !== undefined) {
    const { code, reason, fieldViolations } = result.rejected;
    const violations = fieldViolations.map((v) => ({ field: v.field, description: v.description }));
    return { ok: false, messageId, rejection: { code, reason, violations }, warnings: warningsOf(result) };
  }
  return { ok: true, messageId: result.messageId || messageId, warnings: warningsOf(result) };
}
