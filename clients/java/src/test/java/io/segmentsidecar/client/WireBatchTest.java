package io.segmentsidecar.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import io.segmentsidecar.v1.BatchRequest;
import java.time.Instant;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/** Batch calls in wire form: the bytes built an event at a time are protobuf-java's bytes for the same events. */
class WireBatchTest {
  private static Map<String, Object> props() {
    Map<String, Object> p = new LinkedHashMap<>();
    p.put("campaign_id", "cmp_1");
    p.put("link_count", 3);
    p.put("first_open", true);
    p.put("ratio", 0.25);
    p.put("nested", Map.of("tags", List.of("a", "<b>")));
    return p;
  }

  /** Every event type, every kind of object field (JSON, Struct, none), non-ASCII and long text, timestamps. */
  static List<Event> everyKind() {
    Struct struct = Struct.newBuilder().putFields("plan", Value.newBuilder().setStringValue("pro").build()).build();
    return List.of(
        Track.builder().writeKey("wk").region(Region.EU).userId("u1").anonymousId("a1").event("Email Opened")
            .timestamp(Instant.parse("2026-11-03T10:04:05.123456789Z")).properties(props())
            .context(Map.of("ip", "10.0.0.1")).integrations(Map.of("All", false)).build(),
        Identify.builder().writeKey("wk").userId("u1").messageId("own-id").traits(struct).build(),
        Page.builder().writeKey("wk").userId("ü-1").name("Startseite ☕").category("Docs")
            .properties(Map.of("long", "x".repeat(300))).build(),
        Screen.builder().writeKey("wk").anonymousId("a2").name("Settings").integrations(Struct.getDefaultInstance())
            .build(),
        Group.builder().writeKey("other").region(Region.US).userId("u1").groupId("g1")
            .traits(Map.of("name", "ACME 😀")).build(),
        Alias.builder().writeKey("wk").userId("u1").previousId("a1").timestamp(Instant.ofEpochMilli(-1500)).build(),
        Track.builder().writeKey("wk").userId("u2").event("Nothing Else")
            .properties(Map.of("big", "y".repeat(20_000))).build(),
        Track.builder().writeKey("").userId("").event("").timestamp(Instant.EPOCH).build());
  }

  /** The encoded batch is byte for byte what protobuf-java writes for the request built from the messages. */
  @Test
  void encodedBatchIsTheBytesOfTheBatchRequestOfTheMessages() throws Exception {
    List<Event> events = everyKind();
    WireBatch batch = Core.prepare(events);
    BatchRequest.Builder want = BatchRequest.newBuilder();
    for (int i = 0; i < events.size(); i++) {
      want.addEvents(Requests.batchEvent(events.get(i), batch.ids().get(i)));
    }
    assertEquals(want.build(), BatchRequest.parseFrom(batch.toByteArray()));
    assertArrayEquals(want.build().toByteArray(), batch.toByteArray());
    assertEquals("own-id", batch.ids().get(1));
  }

  /** A batch written into the buffer of an earlier, longer one (as the Batcher reuses them) has only its own bytes. */
  @Test
  void aBatchInAReleasedBufferIsItsOwnEventsOnly() throws Exception {
    WireBatch earlier = Core.prepare(everyKind());
    WireBatch reusing = new WireBatch(earlier.releaseBuffer(), 1);
    List<Event> events = everyKind().subList(0, 2);
    for (Event e : events) {
      reusing.add(e);
    }
    BatchRequest.Builder want = BatchRequest.newBuilder();
    for (int i = 0; i < events.size(); i++) {
      want.addEvents(Requests.batchEvent(events.get(i), reusing.ids().get(i)));
    }
    assertArrayEquals(want.build().toByteArray(), reusing.toByteArray());
  }

  /** Appending a scratch batch (as the Batcher does per event) gives the same bytes as adding to one batch. */
  @Test
  void appendedBatchesAreTheirEventsEndToEnd() {
    List<Event> events = everyKind();
    WireBatch whole = new WireBatch(16, 1);
    WireBatch appended = new WireBatch(16, 1);
    WireBatch one = new WireBatch(16, 1);
    for (Event e : events) {
      whole.add(e);
    }
    for (int i = 0; i < events.size(); i++) {
      // The same ids as in the whole batch, so that the bytes can be compared.
      one.clear();
      one.add(withMessageId(events.get(i), whole.ids().get(i)));
      appended.append(one);
    }
    assertArrayEquals(whole.toByteArray(), appended.toByteArray());
    assertEquals(whole.ids(), appended.ids());
  }

  /** An event that cannot be encoded throws and leaves the batch as it was. */
  @Test
  void anEventThatCannotBeSentLeavesTheBatchAsItWas() {
    WireBatch batch = new WireBatch(64, 4);
    batch.add(Track.builder().writeKey("wk").userId("u").event("E").build());
    byte[] before = batch.toByteArray();
    assertThrows(IllegalArgumentException.class,
        () -> batch.add(Track.builder().writeKey("wk").event("E").properties(List.of(1, 2)).build()));
    assertArrayEquals(before, batch.toByteArray());
    assertEquals(1, batch.count());
  }

  /** Message ids are version 7 UUIDs carrying the time they were made, all different, across buffer refills. */
  @Test
  void messageIdsAreTimeOrderedUuidV7() {
    long before = System.currentTimeMillis();
    Set<String> seen = new HashSet<>();
    for (int i = 0; i < 2_000; i++) {
      String id = MessageIds.next();
      UUID uuid = UUID.fromString(id);
      assertEquals(7, uuid.version());
      assertEquals(2, uuid.variant());
      assertEquals(id, uuid.toString());
      assertTrue(seen.add(id), "id made twice: " + id);
    }
    long ms = UUID.fromString(MessageIds.next()).getMostSignificantBits() >>> 16;
    assertTrue(ms >= before && ms <= System.currentTimeMillis(), "the id's time is " + ms);
    assertNotEquals(MessageIds.next(), MessageIds.next());
  }

  /** The event with the given message id (events are immutable; each type is rebuilt from its builder). */
  private static Event withMessageId(Event e, String id) {
    if (e instanceof Track t) {
      return Track.builder().writeKey(t.writeKey()).region(t.region()).userId(t.userId()).anonymousId(t.anonymousId())
          .messageId(id).timestamp(t.timestamp()).context(t.context()).integrations(t.integrations()).event(t.event())
          .properties(t.properties()).build();
    } else if (e instanceof Identify i) {
      return Identify.builder().writeKey(i.writeKey()).region(i.region()).userId(i.userId()).messageId(id)
          .traits(i.traits()).build();
    } else if (e instanceof Page p) {
      return Page.builder().writeKey(p.writeKey()).userId(p.userId()).messageId(id).name(p.name())
          .category(p.category()).properties(p.properties()).build();
    } else if (e instanceof Screen s) {
      return Screen.builder().writeKey(s.writeKey()).anonymousId(s.anonymousId()).messageId(id).name(s.name())
          .integrations(s.integrations()).build();
    } else if (e instanceof Group g) {
      return Group.builder().writeKey(g.writeKey()).region(g.region()).userId(g.userId()).messageId(id)
          .groupId(g.groupId()).traits(g.traits()).build();
    }
    Alias a = (Alias) e;
    return Alias.builder().writeKey(a.writeKey()).userId(a.userId()).messageId(id).previousId(a.previousId())
        .timestamp(a.timestamp()).build();
  }
}
