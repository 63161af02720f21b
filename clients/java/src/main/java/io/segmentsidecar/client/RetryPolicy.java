package io.segmentsidecar.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.RetryInfo;
import io.grpc.Deadline;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * How a call is retried. It is the policy every client of this repository follows, written once in
 * {@code clients/retry-policy.json} (a gRPC service config; a test fails when {@link #DEFAULT} drifts from it):
 *
 * <ul>
 *   <li>retried: UNAVAILABLE (shutting down, not reachable), RESOURCE_EXHAUSTED (spool full, too many calls), and
 *       CANCELLED that the caller did not cause (gRPC's answer under overload); never INVALID_ARGUMENT or any other
 *       code; never a call whose gRPC Context or future the caller cancelled, or whose client was closed;
 *   <li>at most {@code maxAttempts} attempts, the first included, all within the call's one deadline;
 *   <li>the wait before retry n is random in [0, min(maxBackoff, initialBackoff * multiplier^(n-1))] (full jitter,
 *       as gRPC's own retries), or the server's google.rpc.RetryInfo or grpc-retry-pushback-ms delay when longer;
 *   <li>the client gives up when the attempts are used, or when the wait would end at or after the deadline, with a
 *       {@link RetriesExhaustedException} carrying the last status.
 * </ul>
 *
 * <p>A retry re-sends the same message ids.
 *
 * @param maxAttempts the most attempts, the first included (1 never retries; 0 takes the default, 5)
 * @param initialBackoff the bound of the first jittered wait
 * @param maxBackoff the longest backoff bound (a server's delay may exceed it)
 * @param multiplier how much the backoff bound grows per retry
 */
public record RetryPolicy(int maxAttempts, Duration initialBackoff, Duration maxBackoff, double multiplier) {

  /** The attempts of {@link #DEFAULT}, the first included. */
  public static final int DEFAULT_MAX_ATTEMPTS = 5;

  /** At most 5 attempts, waiting a random time below 0.2 s, 0.4 s, 0.8 s, 1.6 s between them, or longer when the
   * sidecar asks for it. */
  public static final RetryPolicy DEFAULT =
      new RetryPolicy(DEFAULT_MAX_ATTEMPTS, Duration.ofMillis(200), Duration.ofSeconds(2), 2.0);

  /** gRPC's own trailer for a server's retry delay, in milliseconds. */
  static final Metadata.Key<String> PUSHBACK =
      Metadata.Key.of("grpc-retry-pushback-ms", Metadata.ASCII_STRING_MARSHALLER);

  /** Validates the policy. */
  public RetryPolicy {
    if (maxAttempts == 0) {
      maxAttempts = DEFAULT_MAX_ATTEMPTS;
    }
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
    return code == Status.Code.UNAVAILABLE || code == Status.Code.RESOURCE_EXHAUSTED
        || code == Status.Code.CANCELLED;
  }

  /** The longer of the delays the error's google.rpc.RetryInfo and grpc-retry-pushback-ms ask for, or zero. */
  static Duration serverDelay(Throwable error) {
    Duration info = retryInfoDelay(error);
    Metadata trailers = Status.trailersFromThrowable(error);
    String pushback = trailers == null ? null : trailers.get(PUSHBACK);
    if (pushback != null) {
      try {
        long ms = Long.parseLong(pushback.trim());
        if (ms >= 0 && Duration.ofMillis(ms).compareTo(info) > 0) {
          return Duration.ofMillis(ms);
        }
      } catch (NumberFormatException ignored) {
        // an unreadable pushback asks for nothing
      }
    }
    return info;
  }

  /** The delay a google.rpc.RetryInfo detail of the error asks for, or zero. */
  private static Duration retryInfoDelay(Throwable error) {
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

  /** The jittered wait before retry number {@code retry} (1-based): random in [0, bound]. */
  Duration backoff(int retry) {
    double nanos = initialBackoff.toNanos();
    for (int i = 1; i < retry && nanos < maxBackoff.toNanos(); i++) {
      nanos *= multiplier;
    }
    nanos = Math.min(nanos, maxBackoff.toNanos());
    return Duration.ofNanos((long) (ThreadLocalRandom.current().nextDouble() * nanos));
  }

  /**
   * How long to wait before attempt {@code attempt + 1}, or empty when the call must fail now: the status is not
   * retryable, the attempts are used up, or the wait would end after the deadline.
   */
  Optional<Duration> nextWait(Throwable error, int attempt, Deadline deadline) {
    Status status = Status.fromThrowable(error);
    if (!retryable(status.getCode()) || attempt >= maxAttempts) {
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
