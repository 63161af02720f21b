package io.segmentsidecar.client;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.List;
import java.util.Locale;

/**
 * A call that failed with a retryable status (UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED) until its attempts or its
 * deadline ran out ({@link RetryPolicy}). Its status is the last attempt's; its description says how many attempts
 * were made, and, when the sidecar could not be reached at all, names the address and what to check.
 */
public final class RetriesExhaustedException extends StatusRuntimeException {
  private static final long serialVersionUID = 1L;

  /** Parts of gRPC's own messages for a sidecar that cannot be reached (nothing listens, no socket file). */
  private static final List<String> CONNECT_FAILURES =
      List.of("connection refused", "no such file", "unable to resolve", "io exception");

  private final transient String address;
  private final int attempts;
  private final Duration elapsed;

  RetriesExhaustedException(StatusRuntimeException last, String address, int attempts, Duration elapsed) {
    super(describe(last.getStatus(), address, attempts, elapsed).withCause(last), trailersOf(last));
    this.address = address;
    this.attempts = attempts;
    this.elapsed = elapsed;
  }

  private static Metadata trailersOf(StatusRuntimeException last) {
    Metadata trailers = last.getTrailers();
    return trailers == null ? new Metadata() : trailers;
  }

  private static Status describe(Status last, String address, int attempts, Duration elapsed) {
    String tried = String.format(Locale.ROOT, "gave up after %d attempt%s in %.1f s", attempts,
        attempts == 1 ? "" : "s", elapsed.toNanos() / 1e9);
    String original = last.getDescription() == null ? "" : last.getDescription();
    if (cannotConnect(last)) {
      return last.withDescription("cannot connect to the sidecar at " + address
          + ": is it running, and is SIDECAR_ADDRESS right? (" + tried + "; " + original + ")");
    }
    return last.withDescription(original + " (" + tried + ")");
  }

  private static boolean cannotConnect(Status status) {
    if (status.getCode() != Status.Code.UNAVAILABLE) {
      return false;
    }
    StringBuilder text = new StringBuilder(String.valueOf(status.getDescription()));
    for (Throwable t = status.getCause(); t != null; t = t.getCause()) {
      text.append(' ').append(t.getMessage());
    }
    String lower = text.toString().toLowerCase(Locale.ROOT);
    return CONNECT_FAILURES.stream().anyMatch(lower::contains);
  }

  /** The sidecar address the client was using. */
  public String address() {
    return address;
  }

  /** How many attempts were made, the first included. */
  public int attempts() {
    return attempts;
  }

  /** The time from the first attempt to giving up. */
  public Duration elapsed() {
    return elapsed;
  }
}
