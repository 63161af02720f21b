package io.segmentsidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.segmentsidecar.v1.Outcome;
import io.segmentsidecar.v1.OutcomeKind;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * WatchOutcomes against a real sidecar (the harness's {@code up --outcomes}: a disk spool, restarted on request).
 * Skips, saying so, when the sidecar does not implement the outcome API, or when the harness cannot start (unless
 * TEST_REQUIRE_CONFORMANCE=1).
 */
class OutcomesLiveTest {
  private static final String WRITE_KEY = "live-outcomes-key-java";
  private final ConformanceTest harness = new ConformanceTest();

  @AfterEach
  void stopHarness() throws Exception {
    harness.stopHarness();
  }

  private static List<String> send(SidecarClient client, int count, String prefix) {
    List<String> ids = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      ids.add(client.track(Track.builder().writeKey(WRITE_KEY).userId("u-live").event("Outcome Watched")
          .messageId(prefix + "-" + UUID.randomUUID()).build()).messageId());
    }
    return ids;
  }

  /**
   * A watch closed by its caller resumes from its cursor; a watch resumes by itself across a SIGKILL and restart of
   * the sidecar; every event's DELIVERED record arrives exactly once.
   */
  @Test
  @Timeout(180)
  void watchResumesAcrossASidecarRestart() throws Exception {
    JsonNode info = harness.startHarness("--outcomes");
    SidecarOptions options = SidecarOptions.builder().address(info.get("sidecar_address").asText())
        .timeout(Duration.ofSeconds(30)).build();
    try (SidecarClient client = SidecarClient.create(options)) {
      try {
        client.getMessageOutcome("probe");
      } catch (StatusRuntimeException e) {
        Assumptions.assumeFalse(e.getStatus().getCode() == Status.Code.UNIMPLEMENTED,
            "the sidecar does not implement the outcome API (GetMessageOutcome, WatchOutcomes)");
        throw e;
      }
      WatchOptions filter = WatchOptions.ALL.writeKeys(WRITE_KEY).kinds(OutcomeKind.OUTCOME_KIND_DELIVERED);
      List<String> want = new ArrayList<>(send(client, 10, "before"));
      List<Outcome> got = new ArrayList<>();
      try (OutcomeWatch watch = client.watchOutcomes(filter)) {
        while (got.size() < 4 && watch.hasNext()) {
          got.add(watch.next());
        }
      } // the caller closes the stream
      String resumeFrom = got.get(3).getCursor();
      String sentinel = "";
      try (OutcomeWatch watch = client.watchOutcomes(filter.afterCursor(resumeFrom))) {
        while (watch.hasNext()) {
          Outcome o = watch.next();
          got.add(o);
          if (got.size() == 6 && sentinel.isEmpty()) {
            HttpResponse<String> restarted = HttpClient.newHttpClient().send(
                HttpRequest.newBuilder(URI.create(info.get("restart_url").asText()))
                    .POST(HttpRequest.BodyPublishers.noBody()).timeout(Duration.ofSeconds(90)).build(),
                HttpResponse.BodyHandlers.ofString());
            assertEquals(200, restarted.statusCode(), restarted.body());
            want.addAll(send(client, 10, "after"));
            sentinel = send(client, 1, "sentinel").get(0);
            want.add(sentinel);
          }
          if (!sentinel.isEmpty() && o.getMessageId().equals(sentinel)) {
            break;
          }
        }
      }
      Map<String, Integer> counts = new HashMap<>();
      for (Outcome o : got) {
        counts.merge(o.getMessageId(), 1, Integer::sum);
        assertEquals(OutcomeKind.OUTCOME_KIND_DELIVERED, o.getKind());
      }
      assertEquals(want.size(), counts.size(), "distinct records");
      for (String id : want) {
        assertEquals(1, counts.getOrDefault(id, 0), id);
      }
      List<String> again = new ArrayList<>();
      try (OutcomeWatch watch = client.watchOutcomes(filter.afterCursor(resumeFrom))) {
        while (watch.hasNext()) {
          String id = watch.next().getMessageId();
          again.add(id);
          if (id.equals(sentinel)) {
            break;
          }
        }
      }
      assertEquals(got.subList(4, got.size()).stream().map(Outcome::getMessageId).toList(), again);
    }
  }
}
