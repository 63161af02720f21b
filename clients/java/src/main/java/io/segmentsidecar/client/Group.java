package io.segmentsidecar.client;

/** Associates a user with a group (a company, an account). */
public final class Group extends Event {
  private final String groupId;
  private final Object traits;

  private Group(Builder b) {
    super(b);
    this.groupId = b.groupId;
    this.traits = b.traits;
  }

  /** Starts a group call. */
  public static Builder builder() {
    return new Builder();
  }

  /** The group's id. */
  public String groupId() {
    return groupId;
  }

  /** The group's traits, or null. */
  public Object traits() {
    return traits;
  }

  /** Builds a {@link Group}. */
  public static final class Builder extends Event.Builder<Builder, Group> {
    private String groupId;
    private Object traits;

    private Builder() {}

    @Override
    Builder self() {
      return this;
    }

    /** Sets the group id (required). */
    public Builder groupId(String groupId) {
      this.groupId = groupId;
      return this;
    }

    /** Sets the group's traits: a map, a JSON-serialisable object or a Struct. */
    public Builder traits(Object traits) {
      this.traits = traits;
      return this;
    }

    @Override
    public Group build() {
      return new Group(this);
    }
  }
}
