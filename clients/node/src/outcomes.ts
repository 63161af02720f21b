/**
 * What became of events and write keys: the outcome API's values, converted from the generated messages.
 *
 * Enums are names (`"DELIVERED"`, `"REFUSED"`, `"US"`), times are `Date`s. A watch (`SidecarClient.watchOutcomes`)
 * reconnects after UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED it did not cause, or a stream the sidecar ended, for as
 * long as the caller iterates: without the 5-attempt give-up of a unary call, because a sidecar that restarts is
 * worth waiting for. The wait before reconnect n (counted since the last record) is the retry policy's backoff:
 * random in [0, min(2 s, 0.2 s * 2^(n-1))], at least the server's RetryInfo.
 */
import type { Metadata } from "@grpc/grpc-js";
import * as pb from "./gen/segment/sidecar/v1/sidecar";

/** What a record of the outcome log says. DELIVERED: Segment answered 2xx, which does not prove it kept the event. */
export type OutcomeKindName =
  | "UNSPECIFIED"
  | "DELIVERED"
  | "DEAD_LETTERED"
  | "EXPIRED"
  | "KEY_REFUSED"
  | "KEY_RECOVERED"
  | "KEY_RETRYING";
/** What Segment's last answers say of a write key (UNSPECIFIED, as a filter, matches every state). */
export type WriteKeyStateName = "UNSPECIFIED" | "UNKNOWN" | "OK" | "REFUSED" | "RETRYING";
/** Where one event is. */
export type MessageStateName =
  | "UNSPECIFIED"
  | "UNKNOWN"
  | "WAITING"
  | "IN_FLIGHT"
  | "DELIVERED"
  | "DEAD_LETTERED"
  | "EXPIRED";
/** A region as the sidecar reports it. */
export type RegionValue = "UNSPECIFIED" | "US" | "EU";

/** One record of the outcome log; pass its `cursor` as `afterCursor` to resume after it. */
export interface Outcome {
  cursor: string;
  kind: OutcomeKindName;
  time: Date | undefined;
  writeKeyFingerprint: string;
  region: RegionValue;
  /** The event's message id (event records only). */
  messageId: string;
  deadLetterReason: string;
  /** Segment's HTTP status in the answer that decided it (0: none, or a network error). */
  segmentStatus: number;
  segmentResponse: string;
}

/** What the sidecar knows of one write key in one region (for a settings page's "Segment connection"). */
export interface WriteKeyStatus {
  fingerprint: string;
  region: RegionValue;
  state: WriteKeyStateName;
  stateSince: Date | undefined;
  lastStatus: number;
  lastResponse: string;
  backlogEvents: number;
  oldestAcceptedAt: Date | undefined;
  lastDeliveredAt: Date | undefined;
  deadLettersByReason: Record<string, number>;
}

/** One page of `listWriteKeys`; `nextPageToken` is empty on the last page. */
export interface WriteKeyPage {
  writeKeys: WriteKeyStatus[];
  nextPageToken: string;
}

/** Where one event is; `outcome` is its final record once it has one. */
export interface MessageOutcome {
  state: MessageStateName;
  outcome: Outcome | undefined;
  writeKeyFingerprint: string;
  region: RegionValue;
  acceptedAt: Date | undefined;
}

/** Where a watch starts, which records it wants, and how to stop it. */
export interface WatchOptions {
  /** Resume after this cursor; empty: the oldest record held (or, with `fromNow`, after the newest). */
  afterCursor?: string;
  /** Only these write keys' records (the keys themselves); empty for every key. */
  writeKeys?: string[];
  /** Only records of these kinds; empty for every kind. */
  kinds?: OutcomeKindName[];
  /** Without a cursor yet: start after the newest record. */
  fromNow?: boolean;
  /** Ends the watch: the iterator throws the signal's reason. Leaving a `for await` loop ends it too. */
  signal?: AbortSignal;
}

/** The name of a generated enum value without its prefix (`OUTCOME_KIND_DELIVERED` -> `DELIVERED`). */
function nameOf<T extends string>(names: Record<number, string>, value: number, prefix: string): T {
  return (names[value] ?? `${prefix}UNSPECIFIED`).slice(prefix.length) as T;
}

const toNumber = (value: number | bigint | string) => Number(value);

/** An Outcome from its message. */
export function outcomeOf(message: pb.Outcome): Outcome {
  return {
    cursor: message.cursor,
    kind: nameOf<OutcomeKindName>(pb.OutcomeKind, message.kind, "OUTCOME_KIND_"),
    time: message.time,
    writeKeyFingerprint: message.writeKeyFingerprint,
    region: nameOf<RegionValue>(pb.Region, message.region, "REGION_"),
    messageId: message.messageId,
    deadLetterReason: message.deadLetterReason,
    segmentStatus: message.segmentStatus,
    segmentResponse: message.segmentResponse,
  };
}

/** A WriteKeyStatus from its message. */
export function statusOf(message: pb.WriteKeyStatus): WriteKeyStatus {
  const deadLetters: Record<string, number> = {};
  for (const [reason, count] of Object.entries(message.deadLettersByReason)) {
    deadLetters[reason] = toNumber(count);
  }
  return {
    fingerprint: message.fingerprint,
    region: nameOf<RegionValue>(pb.Region, message.region, "REGION_"),
    state: nameOf<WriteKeyStateName>(pb.WriteKeyState, message.state, "WRITE_KEY_STATE_"),
    stateSince: message.stateSince,
    lastStatus: message.lastStatus,
    lastResponse: message.lastResponse,
    backlogEvents: toNumber(message.backlogEvents),
    oldestAcceptedAt: message.oldestAcceptedAt,
    lastDeliveredAt: message.lastDeliveredAt,
    deadLettersByReason: deadLetters,
  };
}

/** A MessageOutcome from a GetMessageOutcomeResponse. */
export function messageOutcomeOf(message: pb.GetMessageOutcomeResponse): MessageOutcome {
  return {
    state: nameOf<MessageStateName>(pb.MessageState, message.state, "MESSAGE_STATE_"),
    outcome: message.outcome ? outcomeOf(message.outcome) : undefined,
    writeKeyFingerprint: message.writeKeyFingerprint,
    region: nameOf<RegionValue>(pb.Region, message.region, "REGION_"),
    acceptedAt: message.acceptedAt,
  };
}

/** The proto value of a write key state filter (undefined: every state). */
export function toWriteKeyState(state: WriteKeyStateName | undefined): pb.WriteKeyState {
  const value = (pb.WriteKeyState as unknown as Record<string, number>)[`WRITE_KEY_STATE_${(state ?? "UNSPECIFIED").toUpperCase()}`];
  if (value === undefined) throw new TypeError(`unknown write key state ${JSON.stringify(state)}`);
  return value as pb.WriteKeyState;
}

/** The response header naming the cursor a WatchOutcomes stream starts after. */
export const START_CURSOR_HEADER = "outcome-start-cursor";

/** The cursor a watch stream starts after, from its response headers ("" when the sidecar sent none). */
export function startCursorOf(headers: Metadata): string {
  const [start] = headers.get(START_CURSOR_HEADER);
  return typeof start === "string" ? start : "";
}

/** The WatchOutcomesRequest of one connection of a watch. */
export function watchRequest(options: WatchOptions, cursor: string): pb.WatchOutcomesRequest {
  const kinds = (options.kinds ?? []).map((kind) => {
    const value = (pb.OutcomeKind as unknown as Record<string, number>)[`OUTCOME_KIND_${kind.toUpperCase()}`];
    if (value === undefined) throw new TypeError(`unknown outcome kind ${JSON.stringify(kind)}`);
    return value as pb.OutcomeKind;
  });
  return { afterCursor: cursor, writeKeys: options.writeKeys ?? [], kinds, fromNow: Boolean(options.fromNow) && cursor === "" };
}
