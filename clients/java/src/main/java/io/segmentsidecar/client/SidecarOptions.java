package io.segmentsidecar.client;

import java.time.Duration;
import java.util.Objects;

/**
 * A client's settings: where the sidecar is, the default deadlines and the retry policy.
 *
 * @param address "host:port" or "unix:/path/to/socket"
 * @param timeout the deadline of a call (retries included); calls have no other deadline
 * @param flushTimeout the deadline of a flush
 * @param retryPolicy how UNAVAILABLE and RESOURCE_EXHAUSTED are retried
 */
public record SidecarOptions(String address, Duration timeout, Duration flushTimeout, RetryPolicy retryPolicy) {

  /** Where the sidecar listens unless SIDECAR_ADDRESS or the options say otherwise. */
  public static final String DEFAULT_ADDRESS = "127.0.0.1:50051";
  /** The default deadline of an event or batch call, retries included. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(10);
  /** The default deadline of a flush. */
  public static final Duration DEFAULT_FLUSH_TIMEOUT = Duration.ofSeconds(60);

  /** Validates the options. */
  public SidecarOptions {
    Objects.requireNonNull(address, "address");
    Objects.requireNonNull(timeout, "timeout");
    Objects.requireNonNull(flushTimeout, "flushTimeout");
    Objects.requireNonNull(retryPolicy, "retryPolicy");
    if (timeout.isNegative() || timeout.isZero() || flushTimeout.isNegative() || flushTimeout.isZero()) {
      throw new IllegalArgumentException("timeouts must be positive");
    }
  }

  /** The defaults: SIDECAR_ADDRESS or 127.0.0.1:50051, 10 s calls, 60 s flushes, {@link RetryPolicy#DEFAULT}. */
  public static SidecarOptions defaults() {
    return builder().build();
  }

  /** Starts from the defaults (the address from SIDECAR_ADDRESS when it is set). */
  public static Builder builder() {
    return builder(System.getenv());
  }

  /** Starts from the defaults, reading SIDECAR_ADDRESS from {@code env} (for tests). */
  static Builder builder(java.util.Map<String, String> env) {
    Builder b = new Builder();
    String address = env.get("SIDECAR_ADDRESS");
    return b.address(address == null || address.isBlank() ? DEFAULT_ADDRESS : address);
  }

  /** Returns a builder holding these options. */
  public Builder toBuilder() {
    return new Builder().address(address).timeout(timeout).flushTimeout(flushTimeout).retryPolicy(retryPolicy);
  }

  /** Builds {@link SidecarOptions}. */
  public static final class Builder {
    private String address = DEFAULT_ADDRESS;
    private Duration timeout = DEFAULT_TIMEOUT;
    private Duration flushTimeout = DEFAULT_FLUSH_TIMEOUT;
    private RetryPolicy retryPolicy = RetryPolicy.DEFAULT;

    private Builder() {}

    /** Sets the address: "host:port" or "unix:/path/to/socket". */
    public Builder address(String address) {
      this.address = address;
      return this;
    }

    /** Sets the deadline of an event or batch call, retries included. */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    /** Sets the deadline of a flush. */
    public Builder flushTimeout(Duration flushTimeout) {
      this.flushTimeout = flushTimeout;
      return this;
    }

    /** Replaces {@link RetryPolicy#DEFAULT}. */
    public Builder retryPolicy(RetryPolicy retryPolicy) {
      this.retryPolicy = retryPolicy;
      return this;
    }

    /** Builds the options. */
    public SidecarOptions build() {
      return new SidecarOptions(address, timeout, flushTimeout, retryPolicy);
    }
  }
}
