package io.segmentsidecar.client;

/** Records a mobile screen view. */
public final class Screen extends Event {
  private final String name;
  private final Object properties;

  private Screen(Builder b) {
    super(b);
    this.name = b.name;
    this.properties = b.properties;
  }

  /** Starts a screen call. */
  public static Builder builder() {
    return new Builder();
  }

  /** The screen's name, or null. */
  public String name() {
    return name;
  }

  /** The screen's properties, or null. */
  public Object properties() {
    return properties;
  }

  /** Builds a {@link Screen}. */
  public static final class Builder extends Event.Builder<Builder, Screen> {
    private String name;
    private Object properties;

    private Builder() {}

    @Override
    Builder self() {
      return this;
    }

    /** Sets the screen name. */
    public Builder name(String name) {
      this.name = name;
      return this;
    }

    /** Sets the properties: a map, a JSON-serialisable object or a Struct. */
    public Builder properties(Object properties) {
      this.properties = properties;
      return this;
    }

    @Override
    public Screen build() {
      return new Screen(this);
    }
  }
}
