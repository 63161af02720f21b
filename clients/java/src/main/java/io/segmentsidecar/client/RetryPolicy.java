package io.segmentsidecar.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.RetryInfo;
import io.grpc.Deadline;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * How a call is retried when the sidecar answers UNAVAILABLE (shutting down, not reachable) or RESOURCE_EXHAUSTED
 * (spool full). Every other status fails the call at once; INVALID_ARGUMENT in particular is never retried. A retry
 * re-sends the same message ids, and waits max(backoff, the delay of the status's google.rpc.RetryInfo). Retries stop
 * at the call's deadline: the client never sleeps past it and fails with the last error instead.
 *
 * @param maxAttempts the most attempts, the first included; 0 for no bound but the deadline
 * @param initialBackoff the wait before the first retry
 * @param maxBackoff the longest backoff (a RetryInfo delay may exceed it)
 * @param multiplier how much the backoff grows per retry
 */
public record RetryPolicy(int maxAttempts, Duration initialBackoff, Duration maxBackoff, double multiplier) {

  /** Retries until the deadline, waiting 50 ms, 100 ms, ... up to 2 s, or longer when RetryInfo asks. */
  public static final RetryPolicy DEFAULT =
      new RetryPolicy(0, Duration.ofMillis(50), Duration.ofSeconds(2), 2.0);

  /** Validates the policy. */
  public RetryPolicy {
    Objects.requireNonNull(initialBackoff, "initialBackoff");
    Objects.requireNonNull(maxBackoff, "maxBackoff");
    if (maxAttempts < 0 || multiplier < 1.0 || initialBackoff.isNegative() || initialBackoff.isZero()
        || maxBackoff.compareTo(initialBackoff) < 0) {
      throw new IllegalArgumentException("invalid retry policy: maxAttempts=" + maxAttempts + ", initialBackoff="
          + initialBackoff + ", maxBackoff=" + maxBackoff + ", multiplier=" + multiplier);
    }
  }

  /** Whether a call that failed with this code may be sent again unchanged. */
  public static boolean retryable(Status.Code code) {
    return code == Status.Code.UNAVAILABLE || code == Status.Code.RESOURCE_EXHAUSTED;
  }

  /** The delay a google.rpc.RetryInfo detail of the error asks for, or zero. */
  static Duration serverDelay(Throwable error) {
    com.google.rpc.Status rich = StatusProto.fromThrowable(error);
    if (rich == null) {
      return Duration.ZERO;
    }
    for (Any detail : rich.getDetailsList()) {
      if (detail.is(RetryInfo.class)) {
        try {
          com.google.protobuf.Duration d = detail.unpack(RetryInfo.class).getRetryDelay();
          return Duration.ofSeconds(d.getSeconds(), d.getNanos());
        } catch (InvalidProtocolBufferException ignored) {
          return Duration.ZERO;
        }
      }
    }
    return Duration.ZERO;
  }

  /** The jittered wait before retry number {@code retry} (1-based): half fixed, half random. */
  Duration backoff(int retry) {
    double nanos = initialBackoff.toNanos();
    for (int i = 1; i < retry && nanos < maxBackoff.toNanos(); i++) {
      nanos *= multiplier;
    }
    nanos = Math.min(nanos, maxBackoff.toNanos());
    return Duration.ofNanos((long) (nanos / 2 + ThreadLocalRandom.current().nextDouble() * nanos / 2));
  }

  /**
   * How long to wait before attempt {@code attempt + 1}, or empty when the call must fail now: the status is not
   * retryable, the attempts are used up, or the wait would end after the deadline.
   */
  Optional<Duration> nextWait(Throwable error, int attempt, Deadline deadline) {
    Status status = Status.fromThrowable(error);
    if (!retryable(status.getCode()) || (maxAttempts > 0 && attempt >= maxAttempts)) {
      return Optional.empty();
    }
    Duration server = serverDelay(error);
    Duration own = backoff(attempt);
    Duration wait = server.compareTo(own) > 0 ? server : own;
    if (deadline.timeRemaining(TimeUnit.NANOSECONDS) <= wait.toNanos()) {
      return Optional.empty();
    }
    return Optional.of(wait);
  }
}
