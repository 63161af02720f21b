package io.segmentsidecar.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import com.google.protobuf.Struct;
import com.google.protobuf.Timestamp;
import io.segmentsidecar.v1.AliasRequest;
import io.segmentsidecar.v1.BatchEvent;
import io.segmentsidecar.v1.GroupRequest;
import io.segmentsidecar.v1.IdentifyRequest;
import io.segmentsidecar.v1.PageRequest;
import io.segmentsidecar.v1.ScreenRequest;
import io.segmentsidecar.v1.TrackRequest;
import java.time.Instant;

/** Converts the wrapper's events into the generated request messages. */
final class Requests {
  private Requests() {}

  /** The event's own message id, or a new UUIDv7. */
  static String idFor(Event e) {
    String id = e.messageId();
    return id == null || id.isEmpty() ? MessageIds.next() : id;
  }

  /** An encoded object field: a Struct, JSON bytes, or neither. */
  record ObjectField(Struct struct, ByteString json) {
    static final ObjectField NONE = new ObjectField(null, null);
  }

  /** Encodes an object field as a Struct (given one) or as the JSON bytes of a map or POJO. */
  static ObjectField encode(String field, Object value) {
    if (value == null) {
      return ObjectField.NONE;
    }
    if (value instanceof Struct s) {
      return new ObjectField(s, null);
    }
    // The bytes are new and never changed: wrapping them spares a copy.
    return new ObjectField(null, UnsafeByteOperations.unsafeWrap(JsonBytes.of(field, value)));
  }

  private static Timestamp timestamp(Instant t) {
    return Timestamp.newBuilder().setSeconds(t.getEpochSecond()).setNanos(t.getNano()).build();
  }

  private static String orEmpty(String s) {
    return s == null ? "" : s;
  }

  static TrackRequest track(Track e, String id) {
    TrackRequest.Builder b = TrackRequest.newBuilder()
        .setWriteKey(e.writeKey()).setRegion(e.region().toProto()).setUserId(orEmpty(e.userId()))
        .setAnonymousId(orEmpty(e.anonymousId())).setMessageId(id).setEvent(orEmpty(e.event()));
    if (e.timestamp() != null) {
      b.setTimestamp(timestamp(e.timestamp()));
    }
    ObjectField c = encode("context", e.context());
    if (c.struct() != null) b.setContext(c.struct());
    if (c.json() != null) b.setContextJson(c.json());
    ObjectField i = encode("integrations", e.integrations());
    if (i.struct() != null) b.setIntegrations(i.struct());
    if (i.json() != null) b.setIntegrationsJson(i.json());
    ObjectField p = encode("properties", e.properties());
    if (p.struct() != null) b.setProperties(p.struct());
    if (p.json() != null) b.setPropertiesJson(p.json());
    return b.build();
  }

  static IdentifyRequest identify(Identify e, String id) {
    IdentifyRequest.Builder b = IdentifyRequest.newBuilder()
        .setWriteKey(e.writeKey()).setRegion(e.region().toProto()).setUserId(orEmpty(e.userId()))
        .setAnonymousId(orEmpty(e.anonymousId())).setMessageId(id);
    if (e.timestamp() != null) {
      b.setTimestamp(timestamp(e.timestamp()));
    }
    ObjectField c = encode("context", e.context());
    if (c.struct() != null) b.setContext(c.struct());
    if (c.json() != null) b.setContextJson(c.json());
    ObjectField i = encode("integrations", e.integrations());
    if (i.struct() != null) b.setIntegrations(i.struct());
    if (i.json() != null) b.setIntegrationsJson(i.json());
    ObjectField t = encode("traits", e.traits());
    if (t.struct() != null) b.setTraits(t.struct());
    if (t.json() != null) b.setTraitsJson(t.json());
    return b.build();
  }

  static PageRequest page(Page e, String id) {
    PageRequest.Builder b = PageRequest.newBuilder()
        .setWriteKey(e.writeKey()).setRegion(e.region().toProto()).setUserId(orEmpty(e.userId()))
        .setAnonymousId(orEmpty(e.anonymousId())).setMessageId(id)
        .setName(orEmpty(e.name())).setCategory(orEmpty(e.category()));
    if (e.timestamp() != null) {
      b.setTimestamp(timestamp(e.timestamp()));
    }
    ObjectField c = encode("context", e.context());
    if (c.struct() != null) b.setContext(c.struct());
    if (c.json() != null) b.setContextJson(c.json());
    ObjectField i = encode("integrations", e.integrations());
    if (i.struct() != null) b.setIntegrations(i.struct());
    if (i.json() != null) b.setIntegrationsJson(i.json());
    ObjectField p = encode("properties", e.properties());
    if (p.struct() != null) b.setProperties(p.struct());
    if (p.json() != null) b.setPropertiesJson(p.json());
    return b.build();
  }

  static ScreenRequest screen(Screen e, String id) {
    ScreenRequest.Builder b = ScreenRequest.newBuilder()
        .setWriteKey(e.writeKey()).setRegion(e.region().toProto()).setUserId(orEmpty(e.userId()))
        .setAnonymousId(orEmpty(e.anonymousId())).setMessageId(id).setName(orEmpty(e.name()));
    if (e.timestamp() != null) {
      b.setTimestamp(timestamp(e.timestamp()));
    }
    ObjectField c = encode("context", e.context());
    if (c.struct() != null) b.setContext(c.struct());
    if (c.json() != null) b.setContextJson(c.json());
    ObjectField i = encode("integrations", e.integrations());
    if (i.struct() != null) b.setIntegrations(i.struct());
    if (i.json() != null) b.setIntegrationsJson(i.json());
    ObjectField p = encode("properties", e.properties());
    if (p.struct() != null) b.setProperties(p.struct());
    if (p.json() != null) b.setPropertiesJson(p.json());
    return b.build();
  }

  static GroupRequest group(Group e, String id) {
    GroupRequest.Builder b = GroupRequest.newBuilder()
        .setWriteKey(e.writeKey()).setRegion(e.region().toProto()).setUserId(orEmpty(e.userId()))
        .setAnonymousId(orEmpty(e.anonymousId())).setMessageId(id).setGroupId(orEmpty(e.groupId()));
    if (e.timestamp() != null) {
      b.setTimestamp(timestamp(e.timestamp()));
    }
    ObjectField c = encode("context", e.context());
    if (c.struct() != null) b.setContext(c.struct());
    if (c.json() != null) b.setContextJson(c.json());
    ObjectField i = encode("integrations", e.integrations());
    if (i.struct() != null) b.setIntegrations(i.struct());
    if (i.json() != null) b.setIntegrationsJson(i.json());
    ObjectField t = encode("traits", e.traits());
    if (t.struct() != null) b.setTraits(t.struct());
    if (t.json() != null) b.setTraitsJson(t.json());
    return b.build();
  }

  static AliasRequest alias(Alias e, String id) {
    AliasRequest.Builder b = AliasRequest.newBuilder()
        .setWriteKey(e.writeKey()).setRegion(e.region().toProto()).setUserId(orEmpty(e.userId()))
        .setAnonymousId(orEmpty(e.anonymousId())).setMessageId(id).setPreviousId(orEmpty(e.previousId()));
    if (e.timestamp() != null) {
      b.setTimestamp(timestamp(e.timestamp()));
    }
    ObjectField c = encode("context", e.context());
    if (c.struct() != null) b.setContext(c.struct());
    if (c.json() != null) b.setContextJson(c.json());
    ObjectField i = encode("integrations", e.integrations());
    if (i.struct() != null) b.setIntegrations(i.struct());
    if (i.json() != null) b.setIntegrationsJson(i.json());
    return b.build();
  }

  /** Wraps any event, with its final message id, as one event of a Batch call. */
  static BatchEvent batchEvent(Event e, String id) {
    if (e instanceof Track t) {
      return BatchEvent.newBuilder().setTrack(track(t, id)).build();
    } else if (e instanceof Identify i) {
      return BatchEvent.newBuilder().setIdentify(identify(i, id)).build();
    } else if (e instanceof Page p) {
      return BatchEvent.newBuilder().setPage(page(p, id)).build();
    } else if (e instanceof Screen s) {
      return BatchEvent.newBuilder().setScreen(screen(s, id)).build();
    } else if (e instanceof Group g) {
      return BatchEvent.newBuilder().setGroup(group(g, id)).build();
    } else if (e instanceof Alias a) {
      return BatchEvent.newBuilder().setAlias(alias(a, id)).build();
    }
    throw new IllegalArgumentException("unknown event " + e.getClass());
  }
}
