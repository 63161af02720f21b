/**
 * When to try a call again. A call has one deadline covering every attempt; each attempt gets the time left. After a
 * retryable failure the next attempt waits max(backoff, RetryInfo delay), backoff being exponential with full
 * jitter; when that wait would end past the deadline, or the attempts are used up, the failure is thrown instead.
 * The message ids never change between attempts, so a retried event is the same event to the sidecar and Segment.
 */
import { SidecarError } from "./errors";

/** Milliseconds a Spec call or a batch may take, all attempts together. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Milliseconds a flush may take: it waits for delivery to Segment. */
export const DEFAULT_FLUSH_TIMEOUT_MS = 60_000;

/** How UNAVAILABLE and RESOURCE_EXHAUSTED are retried; the call's timeout bounds it all. */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 8; 1 never retries). */
  maxAttempts: number;
  /** Upper bound of the first jittered wait, in ms (default 50). */
  initialBackoffMs: number;
  /** Upper bound of any jittered wait, in ms (default 2000); a server's RetryInfo may ask for longer. */
  maxBackoffMs: number;
  /** Growth of the backoff bound per attempt (default 2). */
  multiplier: number;
}

/** The default retry policy. */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  maxAttempts: 8,
  initialBackoffMs: 50,
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
  private readonly deadline: number;

  constructor(
    private readonly policy: RetryPolicy,
    timeoutMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.deadline = this.now() + timeoutMs;
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
}
