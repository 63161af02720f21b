package io.segmentsidecar.client;

/** Ties a user to their traits. */
public final class Identify extends Event {
  private final Object traits;

  private Identify(Builder b) {
    super(b);
    this.traits = b.traits;
  }

  /** Starts an identify call. */
  public static Builder builder() {
    return new Builder();
  }

  /** The user's traits, or null. */
  public Object traits() {
    return traits;
  }

  /** Builds an {@link Identify}. */
  public static final class Builder extends Event.Builder<Builder, Identify> {
    private Object traits;

    private Builder() {}

    @Override
    Builder self() {
      return this;
    }

    /** Sets the traits: a map, a JSON-serialisable object or a Struct. */
    public Builder traits(Object traits) {
      this.traits = traits;
      return this;
    }

    @Override
    public Identify build() {
      return new Identify(this);
    }
  }
}
