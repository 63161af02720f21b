/** Decoding a failed call: its code, message and google.rpc.Status details, into a client error. */
import type { Metadata, ServiceError } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { BadRequest, ErrorInfo, RetryInfo } from "./gen/google/rpc/error_details";
import { Status } from "./gen/google/rpc/status";
import { CursorExpiredError, FieldViolation, InvalidEventError, SidecarError } from "./errors";

/** The trailer that carries a serialized google.rpc.Status. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

/** The google.rpc.Status in the trailers, or undefined when absent or unreadable. */
export function richStatus(metadata: Metadata | undefined): Status | undefined {
  const values = metadata?.get(STATUS_DETAILS_KEY) ?? [];
  const value = values[0];
  if (value === undefined || typeof value === "string") {
    return undefined;
  }
  try {
    return Status.decode(value);
  } catch {
    return undefined; // a garbled trailer must not hide the status code itself
  }
}

function isType(typeUrl: string, name: string): boolean {
  return typeUrl === `type.googleapis.com/${name}` || typeUrl.endsWith(`/${name}`);
}

/** The delay a google.rpc.RetryInfo detail asks for, in seconds. */
export function retryAfter(rich: Status | undefined): number | undefined {
  for (const detail of rich?.details ?? []) {
    if (isType(detail.typeUrl, "google.rpc.RetryInfo")) {
      const delay = RetryInfo.decode(detail.value).retryDelay;
      return delay === undefined ? 0 : delay.seconds + delay.nanos / 1e9;
    }
  }
  return undefined;
}

/** gRPC's own trailer for a server's retry delay, in milliseconds (honoured like a RetryInfo). */
export const PUSHBACK_KEY = "grpc-retry-pushback-ms";

/** The delay a grpc-retry-pushback-ms trailer asks for, in seconds. */
export function pushback(metadata: Metadata | undefined): number | undefined {
  const value = metadata?.get(PUSHBACK_KEY)[0];
  const ms = typeof value === "string" ? Number.parseInt(value, 10) : Number.NaN;
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : undefined;
}

/** The field violations of every google.rpc.BadRequest detail, in order. */
export function violations(rich: Status | undefined): FieldViolation[] {
  const found: FieldViolation[] = [];
  for (const detail of rich?.details ?? []) {
    if (isType(detail.typeUrl, "google.rpc.BadRequest")) {
      for (const v of BadRequest.decode(detail.value).fieldViolations) {
        found.push({ field: v.field, description: v.description });
      }
    }
  }
  return found;
}

/** The ErrorInfo metadata key of an OUT_OF_RANGE answer that names the oldest cursor held. */
export const OLDEST_CURSOR_KEY = "oldest_cursor";

/**
 * The oldest cursor an OUT_OF_RANGE answer names: its ErrorInfo detail's `oldest_cursor`; undefined when the sidecar
 * holds no record (the value is empty) or sent no such detail.
 */
export function oldestCursor(rich: Status | undefined): string | undefined {
  for (const detail of rich?.details ?? []) {
    if (isType(detail.typeUrl, "google.rpc.ErrorInfo")) {
      const value = ErrorInfo.decode(detail.value).metadata[OLDEST_CURSOR_KEY];
      if (value) return value;
    }
  }
  return undefined;
}

/** The client error for a failed call; anything that is not a gRPC status (a closed client) becomes UNKNOWN. */
export function translate(error: ServiceError | Error): SidecarError {
  if (!("code" in error) || typeof error.code !== "number") {
    return new SidecarError(status.UNKNOWN, error.message);
  }
  const rich = richStatus(error.metadata);
  const details = error.details ?? error.message;
  if (error.code === status.INVALID_ARGUMENT) {
    return new InvalidEventError(details, violations(rich));
  }
  if (error.code === status.OUT_OF_RANGE) {
    return new CursorExpiredError(details, oldestCursor(rich));
  }
  const delays = [retryAfter(rich), pushback(error.metadata)].filter((d): d is number => d !== undefined);
  return new SidecarError(error.code, details, delays.length > 0 ? Math.max(...delays) : undefined);
}
