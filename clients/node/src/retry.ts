/**
 * When to try a call again. The policy is the one every client of this repository follows, written once in
 * `clients/retry-policy.json` (a gRPC service config; a test fails when DEFAULT_RETRY drifts from it):
 *
 * - retried: UNAVAILABLE, RESOURCE_EXHAUSTED, and CANCELLED that the caller did not cause (gRPC's answer under
 *   overload); never INVALID_ARGUMENT or any other code; nothing after `close()`;
 * - at most 5 attempts, the first included, all within the call's one deadline (10 s by default);
 * - the wait before retry n is random in [0, min(2 s, 0.2 s * 2^(n-1))] (full jitter, as gRPC's own retries), or
 *   the server's google.rpc.RetryInfo / grpc-retry-pushback-ms delay when that is longer;
 * - give up when the attempts are used, or when the wait would leave the next attempt no time before the deadline.
 *
 * The message ids never change between attempts, so a retried event is the same event to the sidecar and Segment.
 */
import { SidecarError } from "./errors";

/** Milliseconds a Spec call or a batch may take, all attempts together. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Milliseconds a flush may take: it waits for delivery to Segment. */
export const DEFAULT_FLUSH_TIMEOUT_MS = 60_000;

/** How UNAVAILABLE, RESOURCE_EXHAUSTED and CANCELLED are retried; the call's timeout bounds it all. */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 5; 1 never retries). */
  maxAttempts: number;
  /** Upper bound of the first jittered wait, in ms (default 200). */
  initialBackoffMs: number;
  /** Upper bound of any jittered wait, in ms (default 2000); a server's RetryInfo may ask for longer. */
  maxBackoffMs: number;
  /** Growth of the backoff bound per attempt (default 2). */
  multiplier: number;
}

/** The default retry policy. */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  maxAttempts: 5,
  initialBackoffMs: 200,
  maxBackoffMs: 2000,
  multiplier: 2,
});

/** The jittered wait in ms after failed attempt number `attempt` (1-based), before any RetryInfo. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const bound = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (attempt - 1));
  return Math.random() * bound;
}

/** The retry state of one call: its deadline and how many attempts were made. */
export class Attempts {
  made = 0;
  private readonly started: number;
  private readonly deadline: number;

  constructor(
    private readonly policy: RetryPolicy,
    timeoutMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = this.now();
    this.deadline = this.started + timeoutMs;
  }

  /** Milliseconds left before the call's deadline (never negative). */
  remainingMs(): number {
    return Math.max(0, this.deadline - this.now());
  }

  /** Count an attempt and return its timeout in ms: the time left. */
  start(): number {
    this.made += 1;
    return this.remainingMs();
  }

  /** Milliseconds to wait before retrying after `error`, or undefined when the error must be thrown. */
  waitBeforeNext(error: SidecarError): number | undefined {
    if (!error.retryable || this.made >= this.policy.maxAttempts) {
      return undefined;
    }
    const delay = Math.max(backoffMs(this.policy, this.made), (error.retryAfter ?? 0) * 1000);
    // The next attempt needs some time of its own after the wait; a wait that eats the deadline is pointless.
    if (delay + 10 >= this.remainingMs()) {
      return undefined;
    }
    return delay;
  }

  /**
   * The error to throw for the last failure: a retryable one says how many attempts were made, and one that never
   * reached the sidecar names the address and what to check.
   */
  gaveUp(error: SidecarError, address: string): SidecarError {
    if (!error.retryable) {
      return error;
    }
    const took = ((this.now() - this.started) / 1000).toFixed(1);
    const tried = `gave up after ${this.made} attempt${this.made === 1 ? "" : "s"} in ${took} s`;
    const details = cannotConnect(error)
      ? `cannot connect to the sidecar at ${address}: is it running, and is SIDECAR_ADDRESS right? (${tried}; ${error.details})`
      : `${error.details} (${tried})`;
    return new SidecarError(error.code, details, error.retryAfter, this.made);
  }
}

const CONNECT_FAILURES = ["no connection established", "connection refused", "econnrefused", "enoent", "failed to connect"];

/** Whether `error` is gRPC's UNAVAILABLE for a sidecar that could not be reached at all. */
function cannotConnect(error: SidecarError): boolean {
  const text = error.details.toLowerCase();
  return error.codeName === "UNAVAILABLE" && CONNECT_FAILURES.some((part) => text.includes(part));
}
