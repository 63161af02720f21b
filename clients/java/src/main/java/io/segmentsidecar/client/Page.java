package io.segmentsidecar.client;

/** Records a web page view. */
public final class Page extends Event {
  private final String name;
  private final String category;
  private final Object properties;

  private Page(Builder b) {
    super(b);
    this.name = b.name;
    this.category = b.category;
    this.properties = b.properties;
  }

  /** Starts a page call. */
  public static Builder builder() {
    return new Builder();
  }

  /** The page's name, or null. */
  public String name() {
    return name;
  }

  /** The page's category, or null. */
  public String category() {
    return category;
  }

  /** The page's properties, or null. */
  public Object properties() {
    return properties;
  }

  /** Builds a {@link Page}. */
  public static final class Builder extends Event.Builder<Builder, Page> {
    private String name;
    private String category;
    private Object properties;

    private Builder() {}

    @Override
    Builder self() {
      return this;
    }

    /** Sets the page name. */
    public Builder name(String name) {
      this.name = name;
      return this;
    }

    /** Sets the page category. */
    public Builder category(String category) {
      this.category = category;
      return this;
    }

    /** Sets the properties: a map, a JSON-serialisable object or a Struct. */
    public Builder properties(Object properties) {
      this.properties = properties;
      return this;
    }

    @Override
    public Page build() {
      return new Page(this);
    }
  }
}
