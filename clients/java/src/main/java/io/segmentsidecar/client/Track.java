package io.segmentsidecar.client;

/** Records that a user performed an action. */
public final class Track extends Event {
  private final String event;
  private final Object properties;

  private Track(Builder b) {
    super(b);
    this.event = b.event;
    this.properties = b.properties;
  }

  /** Starts a track call. */
  public static Builder builder() {
    return new Builder();
  }

  /** The Spec event name, such as "Email Opened". */
  public String event() {
    return event;
  }

  /** The event's properties, or null. */
  public Object properties() {
    return properties;
  }

  /** Builds a {@link Track}. */
  public static final class Builder extends Event.Builder<Builder, Track> {
    private String event;
    private Object properties;

    private Builder() {}

    @Override
    Builder self() {
      return this;
    }

    /** Sets the event name (required). */
    public Builder event(String event) {
      this.event = event;
      return this;
    }

    /** Sets the properties: a map, a JSON-serialisable object or a Struct. */
    public Builder properties(Object properties) {
      this.properties = properties;
      return this;
    }

    @Override
    public Track build() {
      return new Track(this);
    }
  }
}
