package io.segmentsidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Struct;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.segmentsidecar.v1.BatchRequest;
import io.segmentsidecar.v1.TrackRequest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The blocking and future clients against a real gRPC server that answers what each test scripts. */
class SidecarClientTest {
  /** Keeps the client's own backoff short, so that what a test measures is the server's RetryInfo. */
  static final RetryPolicy FAST = new RetryPolicy(0, Duration.ofMillis(1), Duration.ofMillis(5), 2.0);

  private ScriptedServer server;
  private SidecarClient client;

  @BeforeEach
  void start() throws Exception {
    server = ScriptedServer.onLoopback();
    client = SidecarClient.create(SidecarOptions.builder().address(server.address()).retryPolicy(FAST).build());
  }

  @AfterEach
  void stop() throws Exception {
    client.close();
    server.close();
  }

  private static Track track() {
    return Track.builder().writeKey("wk").userId("u").event("Email Opened").build();
  }

  /** A retried call re-sends the UUID it generated, through UNAVAILABLE and RESOURCE_EXHAUSTED. */
  @Test
  void retriesUnavailableAndExhaustedWithTheSameMessageId() {
    server.trackScript.add(ScriptedServer.unavailable());
    server.trackScript.add(ScriptedServer.exhausted(Duration.ofMillis(1)));

    Result result = client.track(track());

    List<TrackRequest> tracks = server.tracks();
    assertEquals(3, tracks.size());
    assertEquals(7, UUID.fromString(result.messageId()).version());
    for (TrackRequest r : tracks) {
      assertEquals(result.messageId(), r.getMessageId());
    }
    assertEquals("spec.test", result.warnings().get(0).code());
  }

  /** The wait before a retry is at least what google.rpc.RetryInfo asks for. */
  @Test
  void retryWaitsAtLeastTheRetryInfoDelay() {
    Duration delay = Duration.ofMillis(300);
    server.trackScript.add(ScriptedServer.exhausted(delay));

    client.track(track());

    List<Long> nanos = server.trackNanos();
    assertEquals(2, nanos.size());
    long gap = nanos.get(1) - nanos.get(0);
    assertTrue(gap >= delay.toNanos(), "retried after " + gap / 1_000_000 + " ms");
  }

  /** A RetryInfo delay beyond the deadline ends the call at once with the last error. */
  @Test
  void neverSleepsPastTheDeadline() {
    server.trackScript.add(ScriptedServer.exhausted(Duration.ofSeconds(10)));
    server.trackScript.add(ScriptedServer.exhausted(Duration.ofSeconds(10)));
    SidecarClient shortLived = client.withTimeout(Duration.ofSeconds(2));

    long start = System.nanoTime();
    StatusRuntimeException ex = assertThrows(StatusRuntimeException.class, () -> shortLived.track(track()));

    assertEquals(Status.Code.RESOURCE_EXHAUSTED, ex.getStatus().getCode());
    assertTrue(System.nanoTime() - start < Duration.ofSeconds(1).toNanos(), "waited for a retry it had no time for");
    assertEquals(1, server.tracks().size());
  }

  /** RetryPolicy.maxAttempts bounds the attempts. */
  @Test
  void retriesStopAtMaxAttempts() {
    for (int i = 0; i < 4; i++) {
      server.trackScript.add(ScriptedServer.unavailable());
    }
    try (SidecarClient twice = SidecarClient.create(SidecarOptions.builder().address(server.address())
        .retryPolicy(new RetryPolicy(2, Duration.ofMillis(1), Duration.ofMillis(1), 1.0)).build())) {
      StatusRuntimeException ex = assertThrows(StatusRuntimeException.class, () -> twice.track(track()));
      assertEquals(Status.Code.UNAVAILABLE, ex.getStatus().getCode());
    }
    assertEquals(2, server.tracks().size());
  }

  /** INVALID_ARGUMENT is thrown once, typed, with its field violations. */
  @Test
  void invalidArgumentIsTypedAndNeverRetried() {
    server.trackScript.add(ScriptedServer.badRequest("user_id", "required for partner streams"));

    InvalidEventException ex = assertThrows(InvalidEventException.class,
        () -> client.track(Track.builder().writeKey("wk").event("E").messageId("m-1").build()));

    assertEquals("m-1", ex.messageId());
    assertEquals(Status.Code.INVALID_ARGUMENT, ex.code());
    assertEquals(List.of(new FieldViolation("user_id", "required for partner streams")), ex.violations());
    assertTrue(ex.getMessage().contains("user_id"), ex.getMessage());
    assertEquals(1, server.tracks().size());
  }

  /** A status other than UNAVAILABLE or RESOURCE_EXHAUSTED fails at once, unchanged. */
  @Test
  void otherCodesAreNotRetried() {
    server.trackScript.add(Status.FAILED_PRECONDITION.withDescription("needs OAuth").asRuntimeException());

    StatusRuntimeException ex = assertThrows(StatusRuntimeException.class, () -> client.track(track()));

    assertEquals(Status.Code.FAILED_PRECONDITION, ex.getStatus().getCode());
    assertEquals(1, server.tracks().size());
  }

  /** A call cannot hang: the options' timeout is its deadline. */
  @Test
  void defaultDeadlineEndsAHungCall() {
    server.blockTrack = true;
    SidecarClient quick = client.withTimeout(Duration.ofMillis(200));

    StatusRuntimeException ex = assertThrows(StatusRuntimeException.class, () -> quick.track(track()));

    assertEquals(Status.Code.DEADLINE_EXCEEDED, ex.getStatus().getCode());
  }

  /** A record used as typed properties. */
  record Order(String orderId, long total) {}

  /** Maps and POJOs go as JSON bytes (integers exact), a Struct as a Struct, an explicit id unchanged. */
  @Test
  void objectFieldsAreSentAsJsonBytesOrStruct() {
    Struct context = Structs.fromMap(Map.of("plan", "pro"));
    client.track(Track.builder().writeKey("wk").userId("u").messageId("given").event("Order Completed")
        .properties(new Order("o-1", 9007199254740993L)).context(context).integrations(Map.of("All", true)).build());

    TrackRequest got = server.tracks().get(0);
    assertEquals("given", got.getMessageId());
    assertEquals("{\"orderId\":\"o-1\",\"total\":9007199254740993}", got.getPropertiesJson().toStringUtf8());
    assertEquals("{\"All\":true}", got.getIntegrationsJson().toStringUtf8());
    assertEquals("pro", got.getContext().getFieldsOrThrow("plan").getStringValue());
    assertTrue(!got.hasProperties());
    assertThrows(IllegalArgumentException.class,
        () -> client.track(Track.builder().writeKey("wk").userId("u").event("E").properties(List.of(1)).build()));
  }

  /** Batch retries whole with the same ids and reports a rejection per event. */
  @Test
  void batchRetriesWholeAndReportsRejections() {
    server.batchScript.add(ScriptedServer.unavailable());

    List<BatchResult> results = client.batch(List.of(
        Page.builder().writeKey("wk").userId("u").name("Home").build(),
        Track.builder().writeKey("wk").userId("u").build(),
        Alias.builder().writeKey("wk").userId("u").previousId("anon").messageId("alias-1").build()));

    List<BatchRequest> batches = server.batches();
    assertEquals(2, batches.size());
    for (int i = 0; i < 3; i++) {
      String first = ScriptedServer.messageIdOf(batches.get(0).getEvents(i));
      assertEquals(first, ScriptedServer.messageIdOf(batches.get(1).getEvents(i)));
      assertEquals(first, results.get(i).messageId());
    }
    assertTrue(results.get(0).accepted());
    assertEquals("alias-1", results.get(2).messageId());
    InvalidEventException rejection = results.get(1).rejection();
    assertNotNull(rejection);
    assertEquals("event", rejection.violations().get(0).field());
    assertEquals(Status.Code.INVALID_ARGUMENT, rejection.code());
  }

  /** The future client retries the same way and fails with the typed exception. */
  @Test
  void futureClientRetriesAndTypesRejections() throws Exception {
    server.trackScript.add(ScriptedServer.exhausted(Duration.ofMillis(50)));
    server.trackScript.add(ScriptedServer.badRequest("event", "required"));
    SidecarFutureClient futures = client.futures();

    ExecutionException ex = assertThrows(ExecutionException.class, () -> futures.track(track()).get());

    InvalidEventException invalid = assertInstanceOf(InvalidEventException.class, ex.getCause());
    assertEquals("event", invalid.violations().get(0).field());
    List<TrackRequest> tracks = server.tracks();
    assertEquals(2, tracks.size());
    assertEquals(tracks.get(0).getMessageId(), tracks.get(1).getMessageId());
    assertEquals(invalid.messageId(), tracks.get(0).getMessageId());

    Result ok = futures.track(track()).get();
    assertEquals(ok.messageId(), server.tracks().get(2).getMessageId());
  }

  /** SIDECAR_ADDRESS sets the default address; without it the default is 127.0.0.1:50051. */
  @Test
  void addressComesFromSidecarAddress() {
    assertEquals("unix:/run/s.sock", SidecarOptions.builder(Map.of("SIDECAR_ADDRESS", "unix:/run/s.sock"))
        .build().address());
    assertEquals(SidecarOptions.DEFAULT_ADDRESS, SidecarOptions.builder(Map.of()).build().address());
  }

  /** "unix:/path" reaches a server listening on a unix socket. */
  @Test
  void unixSocketAddress(@TempDir Path dir) throws Exception {
    Path socket = dir.resolve("sidecar.sock");
    try (ScriptedServer unix = ScriptedServer.onUnixSocket(socket);
        SidecarClient c = SidecarClient.create(SidecarOptions.builder().address("unix:" + socket).build())) {
      Result r = c.track(track());
      assertEquals(r.messageId(), unix.tracks().get(0).getMessageId());
    }
  }

  /** The backoff grows, stays within its bounds, and non-retryable codes never wait. */
  @Test
  void retryPolicyDecisions() {
    RetryPolicy p = new RetryPolicy(0, Duration.ofMillis(100), Duration.ofMillis(400), 2.0);
    for (int retry = 1; retry < 6; retry++) {
      long expected = Math.min(100L << (retry - 1), 400L);
      Duration d = p.backoff(retry);
      assertTrue(!d.isNegative() && d.toMillis() <= expected, retry + ": " + d);
    }
    io.grpc.Deadline far = io.grpc.Deadline.after(1, java.util.concurrent.TimeUnit.HOURS);
    assertTrue(p.nextWait(Status.INVALID_ARGUMENT.asRuntimeException(), 1, far).isEmpty());
    assertTrue(p.nextWait(Status.INTERNAL.asRuntimeException(), 1, far).isEmpty());
    assertEquals(Duration.ofSeconds(3),
        p.nextWait(ScriptedServer.exhausted(Duration.ofSeconds(3)), 1, far).orElseThrow());
  }
}
