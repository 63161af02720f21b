package io.segmentsidecar.client;

/** Merges a previous identity into a user id. */
public final class Alias extends Event {
  private final String previousId;

  private Alias(Builder b) {
    super(b);
    this.previousId = b.previousId;
  }

  /** Starts an alias call. */
  public static Builder builder() {
    return new Builder();
  }

  /** The identity being merged into the user id. */
  public String previousId() {
    return previousId;
  }

  /** Builds an {@link Alias}. */
  public static final class Builder extends Event.Builder<Builder, Alias> {
    private String previousId;

    private Builder() {}

    @Override
    Builder self() {
      return this;
    }

    /** Sets the previous id (required). */
    public Builder previousId(String previousId) {
      this.previousId = previousId;
      return this;
    }

    @Override
    public Alias build() {
      return new Alias(this);
    }
  }
}
