/**
 * The client's errors, one per way a call can end badly.
 *
 *     SidecarError              any failed call; `code` is the gRPC status code
 *     ├── InvalidEventError     INVALID_ARGUMENT: the event breaks a rule, with its field violations; never retried
 *     └── CursorExpiredError    OUT_OF_RANGE: a watch's cursor is older than the outcome log's window; carries the
 *                               oldest cursor still held
 *
 * UNAVAILABLE, RESOURCE_EXHAUSTED and CANCELLED (when the caller did not close the client) are retried with the same
 * message id (see retry.ts); when the attempts or the deadline run out, the last of them is thrown as a SidecarError
 * with `retryable` true and `attempts` set.
 */
import { status } from "@grpc/grpc-js";

/** The status codes a call is retried on, with the same message ids. */
export const RETRYABLE_CODES: ReadonlySet<status> = new Set([
  status.UNAVAILABLE,
  status.RESOURCE_EXHAUSTED,
  status.CANCELLED,
]);

/** A field that broke a rule: `field` is a path such as `user_id` or `properties.revenue`. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** A call the sidecar refused or could not answer. */
export class SidecarError extends Error {
  /** The gRPC status code (`status.UNAVAILABLE`...). */
  readonly code: status;
  /** The status message, for a person. */
  readonly details: string;
  /** Seconds the server asked to wait before a retry (google.rpc.RetryInfo), if it said. */
  readonly retryAfter: number | undefined;
  /** Attempts made before this error was thrown, the first included. */
  readonly attempts: number;

  constructor(code: status, details: string, retryAfter?: number, attempts = 1) {
    super(`${status[code] ?? code}: ${details}`);
    this.name = "SidecarError";
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
    this.attempts = attempts;
  }

  /** Whether sending the same call again (same message ids) later may succeed. */
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }

  /** The status code's name, such as `INVALID_ARGUMENT`. */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }
}

/** The sidecar rejected the event (INVALID_ARGUMENT); `violations` says which fields and why. */
export class InvalidEventError extends SidecarError {
  readonly violations: readonly FieldViolation[];

  constructor(details: string, violations: readonly FieldViolation[]) {
    super(status.INVALID_ARGUMENT, details);
    this.name = "InvalidEventError";
    this.violations = violations;
  }

  /** The field of the first violation, or undefined when the sidecar named none. */
  get field(): string | undefined {
    return this.violations[0]?.field;
  }
}

/**
 * A watch's cursor is older than the outcome log's window (OUT_OF_RANGE): records were dropped. `oldestCursor` is
 * the oldest cursor the sidecar still holds, when it said so; watch again without a cursor to read from it.
 */
export class CursorExpiredError extends SidecarError {
  readonly oldestCursor: string | undefined;

  constructor(details: string, oldestCursor: string | undefined) {
    super(status.OUT_OF_RANGE, details);
    this.name = "CursorExpiredError";
    this.oldestCursor = oldestCursor;
  }
}
