package io.segmentsidecar.client;

import java.time.Instant;
import java.util.Objects;

/**
 * One Segment Spec call: a {@link Track}, {@link Identify}, {@link Page}, {@link Screen}, {@link Group} or
 * {@link Alias}. Events are immutable and built with their type's {@code builder()}.
 *
 * <p>Object fields (properties, traits, context, integrations) take a {@code Map<String, Object>} or any object
 * Jackson serialises to a JSON object (sent as the request's {@code *_json} bytes, integers kept exact), or a
 * {@link com.google.protobuf.Struct} (sent as the request's Struct field, as is).
 *
 * <p>The message id is optional: the client generates a random UUID when it is null, before the first attempt, so
 * that every retry of a call carries the same id and Segment de-duplicates the event.
 */
public abstract sealed class Event permits Track, Identify, Page, Screen, Group, Alias {
  private final String writeKey;
  private final Region region;
  private final String userId;
  private final String anonymousId;
  private final String messageId;
  private final Instant timestamp;
  private final Object context;
  private final Object integrations;

  Event(Builder<?, ?> b) {
    this.writeKey = Objects.requireNonNull(b.writeKey, "writeKey");
    this.region = b.region;
    this.userId = b.userId;
    this.anonymousId = b.anonymousId;
    this.messageId = b.messageId;
    this.timestamp = b.timestamp;
    this.context = b.context;
    this.integrations = b.integrations;
  }

  /** The customer's Segment source write key. */
  public String writeKey() {
    return writeKey;
  }

  /** The customer's workspace region. */
  public Region region() {
    return region;
  }

  /** The customer's own id for the user, or null. */
  public String userId() {
    return userId;
  }

  /** The anonymous id, or null. */
  public String anonymousId() {
    return anonymousId;
  }

  /** The event's own message id, or null when the client generates one. */
  public String messageId() {
    return messageId;
  }

  /** When the event happened, or null for "when the sidecar received it". */
  public Instant timestamp() {
    return timestamp;
  }

  /** Extra context, or null. */
  public Object context() {
    return context;
  }

  /** Destination switches, or null. */
  public Object integrations() {
    return integrations;
  }

  /**
   * The fields every call shares.
   *
   * @param <B> the concrete builder, returned by every setter
   * @param <E> the event it builds
   */
  public abstract static class Builder<B extends Builder<B, E>, E extends Event> {
    private String writeKey;
    private Region region = Region.UNSPECIFIED;
    private String userId;
    private String anonymousId;
    private String messageId;
    private Instant timestamp;
    private Object context;
    private Object integrations;

    Builder() {}

    abstract B self();

    /** Builds the immutable event. */
    public abstract E build();

    /** Sets the customer's write key (required). */
    public B writeKey(String writeKey) {
      this.writeKey = writeKey;
      return self();
    }

    /** Sets the region (default: the sidecar's default region). */
    public B region(Region region) {
      this.region = Objects.requireNonNull(region, "region");
      return self();
    }

    /** Sets the user id. */
    public B userId(String userId) {
      this.userId = userId;
      return self();
    }

    /** Sets the anonymous id. */
    public B anonymousId(String anonymousId) {
      this.anonymousId = anonymousId;
      return self();
    }

    /** Sets an explicit message id (at most 99 characters); by default the client generates one. */
    public B messageId(String messageId) {
      this.messageId = messageId;
      return self();
    }

    /** Sets when the event happened. */
    public B timestamp(Instant timestamp) {
      this.timestamp = timestamp;
      return self();
    }

    /** Sets extra context: a map, a JSON-serialisable object or a Struct. */
    public B context(Object context) {
      this.context = context;
      return self();
    }

    /** Sets destination switches: a map, a JSON-serialisable object or a Struct. */
    public B integrations(Object integrations) {
      this.integrations = integrations;
      return self();
    }
  }
}
