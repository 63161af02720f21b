package io.segmentsidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.segmentsidecar.v1.BatchRequest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The Batcher's size, byte and time bounds and its lifecycle, against a real gRPC server. */
class BatcherTest {
  private ScriptedServer server;
  private SidecarClient client;
  private final LinkedBlockingQueue<BatchReport> reports = new LinkedBlockingQueue<>();

  @BeforeEach
  void start() throws Exception {
    server = ScriptedServer.onLoopback();
    client = SidecarClient.create(SidecarOptions.builder().address(server.address())
        .retryPolicy(new RetryPolicy(2, Duration.ofMillis(1), Duration.ofMillis(1), 1.0)).build());
  }

  @AfterEach
  void stop() throws Exception {
    client.close();
    server.close();
  }

  /** Waits up to 5 s for the next report. */
  private BatchReport next() throws InterruptedException {
    BatchReport r = reports.poll(5, TimeUnit.SECONDS);
    assertNotNull(r, "no batch was sent within 5 s");
    return r;
  }

  private static Track track() {
    return Track.builder().writeKey("wk").userId("u").event("E").build();
  }

  /** Full batches go out as they fill, in order, and close sends the rest. */
  @Test
  void sendsFullBatchesAndCloseSendsTheRest() throws Exception {
    Batcher b = client.newBatcher(BatcherOptions.DEFAULT.withMaxEvents(3).withMaxDelay(Duration.ofHours(1))
        .withOnReport(reports::add));
    List<String> ids = new ArrayList<>();
    for (int i = 0; i < 7; i++) {
      ids.add(b.add(track()));
    }
    assertEquals(ids.subList(0, 3), next().messageIds());
    assertEquals(ids.subList(3, 6), next().messageIds());
    b.close();
    BatchReport last = next();
    assertEquals(List.of(ids.get(6)), last.messageIds());
    assertNull(last.error());
    assertEquals(3, server.batches().size());
  }

  /**
   * Many batches in a row, each written into the buffer of one sent before it: every event arrives once, in order,
   * with its own fields (no bytes left from an earlier, longer batch).
   */
  @Test
  void batchesWrittenIntoReusedBuffersCarryTheirOwnEvents() throws Exception {
    List<String> ids = new ArrayList<>();
    try (Batcher b = client.newBatcher(BatcherOptions.DEFAULT.withMaxEvents(7).withMaxDelay(Duration.ofHours(1)))) {
      for (int i = 0; i < 200; i++) {
        // Events of different lengths, so that a batch is sometimes shorter than the buffer it reuses.
        ids.add(b.add(Track.builder().writeKey("wk").userId("u" + i).event("E")
            .properties(Map.of("text", "x".repeat(i % 13 * 50))).build()));
        if (i % 50 == 0) {
          b.flush();
        }
      }
    }
    List<String> sent = new ArrayList<>();
    int i = 0;
    for (BatchRequest batch : server.batches()) {
      for (var event : batch.getEventsList()) {
        sent.add(event.getTrack().getMessageId());
        assertEquals("u" + i, event.getTrack().getUserId());
        assertEquals("{\"text\":\"" + "x".repeat(i % 13 * 50) + "\"}", event.getTrack().getPropertiesJson().toStringUtf8());
        i++;
      }
    }
    assertEquals(ids, sent);
  }

  /** One event goes out after maxDelay without a flush. */
  @Test
  void sendsAfterMaxDelay() throws Exception {
    try (Batcher b = client.newBatcher(BatcherOptions.DEFAULT.withMaxDelay(Duration.ofMillis(20))
        .withOnReport(reports::add))) {
      String id = b.add(Identify.builder().writeKey("wk").userId("u").traits(Map.of("a", 1)).build());
      assertEquals(List.of(id), next().messageIds());
    }
  }

  /** The byte bound cuts a batch before the count bound. */
  @Test
  void sendsOnTheByteBound() throws Exception {
    try (Batcher b = client.newBatcher(BatcherOptions.DEFAULT.withMaxBytes(1).withMaxDelay(Duration.ofHours(1))
        .withOnReport(reports::add))) {
      b.add(track());
      assertEquals(1, next().messageIds().size());
    }
  }

  /** flush returns after the batch was sent and reported, rejections included. */
  @Test
  void flushWaitsAndReportsRejections() throws Exception {
    try (Batcher b = client.newBatcher(BatcherOptions.DEFAULT.withMaxDelay(Duration.ofHours(1))
        .withOnReport(reports::add))) {
      b.add(Track.builder().writeKey("wk").userId("u").build());
      b.flush();
      BatchReport r = reports.poll();
      assertNotNull(r, "flush returned before the batch was reported");
      assertEquals("event", r.results().get(0).rejection().violations().get(0).field());
      b.flush(); // nothing buffered: returns at once
    }
  }

  /** close twice is fine; add and flush after close throw. */
  @Test
  void closeIsIdempotentAndRefusesLaterEvents() {
    Batcher b = client.newBatcher(BatcherOptions.DEFAULT);
    b.close();
    b.close();
    assertThrows(IllegalStateException.class, () -> b.add(track()));
    assertThrows(IllegalStateException.class, b::flush);
  }

  /** A batch that fails after its retries is reported with the error. */
  @Test
  void reportsWholeCallFailures() throws Exception {
    server.batchScript.add(ScriptedServer.unavailable());
    server.batchScript.add(ScriptedServer.unavailable());
    try (Batcher b = client.newBatcher(BatcherOptions.DEFAULT.withMaxEvents(1).withOnReport(reports::add))) {
      b.add(track());
      BatchReport r = next();
      assertNotNull(r.error());
      assertNull(r.results());
      List<BatchRequest> batches = server.batches();
      assertEquals(2, batches.size());
    }
  }
}
