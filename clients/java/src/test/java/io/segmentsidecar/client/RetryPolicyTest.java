package io.segmentsidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;

/** The one retry policy of the four clients, as the Java client follows it. */
class RetryPolicyTest {

  private static Track track() {
    return Track.builder().writeKey("wk").userId("u").event("Email Opened").build();
  }

  /** RetryPolicy.DEFAULT is clients/retry-policy.json's. */
  @Test
  void defaultsAreTheSharedPolicy() throws Exception {
    JsonNode policy = new ObjectMapper().readTree(Path.of("..", "retry-policy.json").toFile())
        .get("methodConfig").get(0).get("retryPolicy");
    RetryPolicy p = RetryPolicy.DEFAULT;
    assertEquals(policy.get("maxAttempts").asInt(), p.maxAttempts());
    assertEquals(seconds(policy.get("initialBackoff").asText()), p.initialBackoff());
    assertEquals(seconds(policy.get("maxBackoff").asText()), p.maxBackoff());
    assertEquals(policy.get("backoffMultiplier").asDouble(), p.multiplier());
    Set<String> codes = new HashSet<>();
    policy.get("retryableStatusCodes").forEach(c -> codes.add(c.asText()));
    for (Status.Code code : Status.Code.values()) {
      assertEquals(codes.contains(code.name()), RetryPolicy.retryable(code), code.name());
    }
  }

  private static Duration seconds(String text) {
    return Duration.ofNanos((long) (Double.parseDouble(text.replace("s", "")) * 1e9));
  }

  /**
   * Against a closed port the client makes the policy's 5 attempts and gives up within the sum of the jitter bounds
   * (0.2 + 0.4 + 0.8 + 1.6 = 3.0 s), with an error naming the address and SIDECAR_ADDRESS.
   */
  @Test
  void noSidecarGivesUpAfterFiveAttemptsNamingTheAddress() throws Exception {
    int port;
    try (ServerSocket probe = new ServerSocket(0)) {
      port = probe.getLocalPort();
    }
    String address = "127.0.0.1:" + port;
    try (SidecarClient client = SidecarClient.create(SidecarOptions.builder().address(address).build())) {
      long start = System.nanoTime();
      RetriesExhaustedException e = assertThrows(RetriesExhaustedException.class, () -> client.track(track()));
      Duration took = Duration.ofNanos(System.nanoTime() - start);
      System.out.printf("java: %d attempts, gave up after %.2f s: %s%n", e.attempts(), took.toNanos() / 1e9,
          e.getMessage());
      assertEquals(5, e.attempts());
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
      assertTrue(took.compareTo(Duration.ofMillis(3500)) < 0, "gave up after " + took);
      assertTrue(e.getMessage().contains("cannot connect to the sidecar at " + address), e.getMessage());
      assertTrue(e.getMessage().contains("SIDECAR_ADDRESS"), e.getMessage());
      assertTrue(e.getMessage().contains("gave up after 5 attempts"), e.getMessage());
    }
  }

  /** The future client follows the same policy against a closed port. */
  @Test
  void futureClientGivesUpTheSameWay() throws Exception {
    int port;
    try (ServerSocket probe = new ServerSocket(0)) {
      port = probe.getLocalPort();
    }
    try (SidecarFutureClient client =
        SidecarFutureClient.create(SidecarOptions.builder().address("127.0.0.1:" + port).build())) {
      CompletionException e = assertThrows(CompletionException.class, () -> client.track(track()).join());
      RetriesExhaustedException cause = (RetriesExhaustedException) e.getCause();
      assertEquals(5, cause.attempts());
    }
  }

  /** CANCELLED that the caller did not cause is retried, with the same message id. */
  @Test
  void cancelledByTheServerIsRetried() throws Exception {
    try (ScriptedServer server = ScriptedServer.onLoopback();
        SidecarClient client = SidecarClient.create(SidecarOptions.builder().address(server.address())
            .retryPolicy(SidecarClientTest.FAST).build())) {
      server.trackScript.add(Status.CANCELLED.withDescription("overloaded").asRuntimeException());
      Result result = client.track(track());
      List<String> ids = server.tracks().stream().map(r -> r.getMessageId()).toList();
      assertEquals(List.of(result.messageId(), result.messageId()), ids);
    }
  }

  /** A grpc-retry-pushback-ms trailer delays the retry like a RetryInfo. */
  @Test
  void pushbackTrailerIsHonoured() throws Exception {
    try (ScriptedServer server = ScriptedServer.onLoopback();
        SidecarClient client = SidecarClient.create(SidecarOptions.builder().address(server.address())
            .retryPolicy(SidecarClientTest.FAST).build())) {
      Metadata trailers = new Metadata();
      trailers.put(RetryPolicy.PUSHBACK, "400");
      server.trackScript.add(new StatusRuntimeException(Status.UNAVAILABLE, trailers));
      client.track(track());
      List<Long> nanos = server.trackNanos();
      assertEquals(2, nanos.size());
      assertTrue(nanos.get(1) - nanos.get(0) >= Duration.ofMillis(390).toNanos(), "the pushback was not honoured");
    }
  }
}
