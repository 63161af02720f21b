package io.segmentsidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.rpc.Code;
import com.google.rpc.ErrorInfo;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.StreamObserver;
import io.segmentsidecar.v1.GetMessageOutcomeRequest;
import io.segmentsidecar.v1.GetMessageOutcomeResponse;
import io.segmentsidecar.v1.GetWriteKeyStatusRequest;
import io.segmentsidecar.v1.GetWriteKeyStatusResponse;
import io.segmentsidecar.v1.ListWriteKeysRequest;
import io.segmentsidecar.v1.ListWriteKeysResponse;
import io.segmentsidecar.v1.MessageState;
import io.segmentsidecar.v1.Outcome;
import io.segmentsidecar.v1.OutcomeKind;
import io.segmentsidecar.v1.SidecarServiceGrpc;
import io.segmentsidecar.v1.WatchOutcomesRequest;
import io.segmentsidecar.v1.WatchOutcomesResponse;
import io.segmentsidecar.v1.WriteKeyState;
import io.segmentsidecar.v1.WriteKeyStatus;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The outcome API against a scripted gRPC server: the three calls, and a watch that resumes by itself. */
class OutcomesTest {
  /**
   * The scripted outcome log, drops per watch connection, a failure for every watch, pages of keys. With {@code
   * startHeader} each watch names its start cursor in an outcome-start-cursor header, as the sidecar does ("c0"
   * before the first record); {@code writtenOnDrop} is appended to the log when a stream drops.
   */
  private static final Metadata.Key<String> START_CURSOR =
      Metadata.Key.of("outcome-start-cursor", Metadata.ASCII_STRING_MARSHALLER);
  private final List<Outcome> log = new ArrayList<>();
  private final Deque<Integer> drops = new ArrayDeque<>();
  private volatile StatusRuntimeException failure;
  private volatile boolean startHeader;
  private final List<Outcome> writtenOnDrop = new ArrayList<>();
  private final List<String> cursors = new ArrayList<>();
  private final List<Boolean> fromNow = new ArrayList<>();
  private final List<List<String>> pages = new ArrayList<>();
  private final List<String> tokens = new ArrayList<>();
  private Server server;
  private SidecarClient client;

  private static List<Outcome> delivered(int n) {
    List<Outcome> out = new ArrayList<>();
    for (int i = 1; i <= n; i++) {
      out.add(Outcome.newBuilder().setCursor("c" + i).setKind(OutcomeKind.OUTCOME_KIND_DELIVERED)
          .setMessageId("m" + i).setWriteKeyFingerprint("fp").setSegmentStatus(200).build());
    }
    return out;
  }

  @BeforeEach
  void start() throws Exception {
    server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(ServerInterceptors.intercept(new Service(), new StartCursorHeader())).build().start();
    RetryPolicy fast = new RetryPolicy(5, Duration.ofMillis(10), Duration.ofMillis(50), 2.0);
    client = SidecarClient.create(SidecarOptions.builder().address("127.0.0.1:" + server.getPort())
        .retryPolicy(fast).build());
  }

  @AfterEach
  void stop() throws Exception {
    client.close();
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  /** Where a watch starts in the log: after its cursor ("c0": the start), or after the last record with from_now. */
  private synchronized int startOf(WatchOutcomesRequest r) {
    if (r.getAfterCursor().isEmpty()) {
      return r.getFromNow() ? log.size() : 0;
    }
    int start = 0;
    for (int i = 0; i < log.size(); i++) {
      if (log.get(i).getCursor().equals(r.getAfterCursor())) {
        start = i + 1;
      }
    }
    return start;
  }

  /**
   * Sends a watch's start cursor in its headers as soon as its request comes, before any record and also when none
   * comes (grpc-java would otherwise send headers with the first record only); later headers are not sent again.
   */
  private final class StartCursorHeader implements ServerInterceptor {
    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata requestHeaders,
        ServerCallHandler<Q, R> next) {
      AtomicBoolean sent = new AtomicBoolean();
      ServerCall<Q, R> once = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
        @Override
        public void sendHeaders(Metadata headers) {
          if (sent.compareAndSet(false, true)) {
            super.sendHeaders(headers);
          }
        }
      };
      ServerCall.Listener<Q> listener = next.startCall(once, requestHeaders);
      return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
        @Override
        public void onMessage(Q message) {
          if (startHeader && message instanceof WatchOutcomesRequest r) {
            int start = startOf(r);
            Metadata headers = new Metadata();
            synchronized (OutcomesTest.this) {
              headers.put(START_CURSOR, start == 0 ? "c0" : log.get(start - 1).getCursor());
            }
            once.sendHeaders(headers);
          }
          super.onMessage(message);
        }
      };
    }
  }

  private final class Service extends SidecarServiceGrpc.SidecarServiceImplBase {
    @Override
    public void watchOutcomes(WatchOutcomesRequest r, StreamObserver<WatchOutcomesResponse> out) {
      Integer drop;
      List<Outcome> records;
      synchronized (OutcomesTest.this) {
        cursors.add(r.getAfterCursor());
        fromNow.add(r.getFromNow());
        if (failure != null) {
          out.onError(failure);
          return;
        }
        drop = drops.poll();
        int start = startOf(r);
        int end = drop == null ? log.size() : Math.min(log.size(), start + drop);
        records = List.copyOf(log.subList(start, end));
      }
      for (Outcome o : records) {
        out.onNext(WatchOutcomesResponse.newBuilder().setOutcome(o).build());
      }
      if (drop != null) {
        synchronized (OutcomesTest.this) {
          log.addAll(writtenOnDrop);
          writtenOnDrop.clear();
        }
        out.onError(Status.UNAVAILABLE.withDescription("scripted drop").asRuntimeException());
      }
      // otherwise a live stream with nothing new: the client ends it
    }

    @Override
    public synchronized void listWriteKeys(ListWriteKeysRequest r, StreamObserver<ListWriteKeysResponse> out) {
      tokens.add(r.getPageToken());
      int index = r.getPageToken().isEmpty() ? 0 : Integer.parseInt(r.getPageToken());
      ListWriteKeysResponse.Builder resp = ListWriteKeysResponse.newBuilder();
      for (String f : pages.get(index)) {
        resp.addWriteKeys(WriteKeyStatus.newBuilder().setFingerprint(f).setState(r.getState()));
      }
      if (index + 1 < pages.size()) {
        resp.setNextPageToken(String.valueOf(index + 1));
      }
      out.onNext(resp.build());
      out.onCompleted();
    }

    @Override
    public void getWriteKeyStatus(GetWriteKeyStatusRequest r, StreamObserver<GetWriteKeyStatusResponse> out) {
      out.onNext(GetWriteKeyStatusResponse.newBuilder().setStatus(WriteKeyStatus.newBuilder()
          .setFingerprint("fp-" + r.getWriteKey()).setRegion(r.getRegion()).setState(WriteKeyState.WRITE_KEY_STATE_REFUSED)
          .setLastStatus(401)).build());
      out.onCompleted();
    }

    @Override
    public void getMessageOutcome(GetMessageOutcomeRequest r, StreamObserver<GetMessageOutcomeResponse> out) {
      GetMessageOutcomeResponse.Builder resp = GetMessageOutcomeResponse.newBuilder()
          .setState(MessageState.MESSAGE_STATE_UNKNOWN);
      for (Outcome o : log) {
        if (o.getMessageId().equals(r.getMessageId())) {
          resp.setState(MessageState.MESSAGE_STATE_DELIVERED).setOutcome(o);
        }
      }
      out.onNext(resp.build());
      out.onCompleted();
    }
  }

  /** Three dropped streams (one before any record) are reconnected from the last cursor, every record once. */
  @Test
  void watchResumesAfterTheLastCursorWhenTheStreamDrops() {
    log.addAll(delivered(10));
    drops.addAll(List.of(3, 0, 4));
    List<String> ids = new ArrayList<>();
    try (OutcomeWatch watch = client.watchOutcomes(WatchOptions.ALL.kinds(OutcomeKind.OUTCOME_KIND_DELIVERED))) {
      while (ids.size() < 10 && watch.hasNext()) {
        ids.add(watch.next().getMessageId());
      }
      assertEquals("c10", watch.cursor());
    }
    assertEquals(List.of("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10"), ids);
    synchronized (this) {
      assertEquals(List.of("", "c3", "c3", "c7"), cursors);
    }
  }

  /**
   * A watch starting now whose first stream drops before any record reconnects after the start cursor the sidecar
   * named in its headers, not from now again: the records written meanwhile come, each once.
   */
  @Test
  void fromNowWatchDroppedBeforeAnyRecordResumesFromItsStartCursor() {
    List<Outcome> all = delivered(5);
    synchronized (this) {
      log.addAll(all.subList(0, 3));
      writtenOnDrop.addAll(all.subList(3, 5));
      drops.add(0);
    }
    startHeader = true;
    List<String> ids = new ArrayList<>();
    try (OutcomeWatch watch = client.watchOutcomes(WatchOptions.ALL.startingNow())) {
      // A watch that missed the records would wait for ever: closed after 10 s, its hasNext() says false.
      CompletableFuture<Void> deadline =
          CompletableFuture.runAsync(watch::close, CompletableFuture.delayedExecutor(10, TimeUnit.SECONDS));
      while (ids.size() < 2 && watch.hasNext()) {
        ids.add(watch.next().getMessageId());
      }
      deadline.cancel(false);
      assertEquals(List.of("m4", "m5"), ids);
      assertEquals("c5", watch.cursor());
    }
    synchronized (this) {
      assertEquals(List.of("", "c3"), cursors);
      assertEquals(List.of(true, false), fromNow);
    }
  }

  /**
   * The same for a log empty at the start, dropped twice before its first record: the watch resumes after "c0", and
   * its cursor() is that start cursor while it waits.
   */
  @Test
  void fromNowWatchOfAnEmptyLogResumesFromItsStartCursor() {
    synchronized (this) {
      writtenOnDrop.addAll(delivered(1));
      drops.addAll(List.of(0, 0));
    }
    startHeader = true;
    try (OutcomeWatch watch = client.watchOutcomes(WatchOptions.ALL.startingNow())) {
      CompletableFuture<Void> deadline =
          CompletableFuture.runAsync(watch::close, CompletableFuture.delayedExecutor(10, TimeUnit.SECONDS));
      boolean got = watch.hasNext();
      deadline.cancel(false);
      assertTrue(got, "the watch ended without the record written while it was away");
      assertEquals("c0", watch.cursor());
      assertEquals("m1", watch.next().getMessageId());
    }
    synchronized (this) {
      assertEquals(List.of("", "c0", "c0"), cursors);
    }
  }

  /** Eight drops in a row are more than a call's 5 attempts: the watch still reconnects. */
  @Test
  void watchKeepsReconnectingPastTheAttemptLimit() {
    log.addAll(delivered(1));
    drops.addAll(List.of(0, 0, 0, 0, 0, 0, 0, 0));
    try (OutcomeWatch watch = client.watchOutcomes(WatchOptions.ALL)) {
      assertEquals("m1", watch.next().getMessageId());
    }
    synchronized (this) {
      assertEquals(9, cursors.size());
    }
  }

  /** Closing the watch from another thread ends a hasNext() that waits for records. */
  @Test
  void closeEndsAWaitingWatch() throws Exception {
    OutcomeWatch watch = client.watchOutcomes(WatchOptions.ALL.startingNow());
    Thread closer = new Thread(() -> {
      try {
        Thread.sleep(200);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      watch.close();
    });
    closer.start();
    assertFalse(watch.hasNext());
    closer.join();
  }

  /**
   * OUT_OF_RANGE throws CursorExpiredException with the oldest cursor its ErrorInfo detail holds; none when the
   * detail's value is empty, as the sidecar sends it for an empty log (whose message says "none: the log is empty").
   */
  @ParameterizedTest
  @ValueSource(strings = {"c42", ""})
  void cursorOlderThanTheWindowIsTyped(String oldest) {
    failure = StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
        .setCode(Code.OUT_OF_RANGE_VALUE).setMessage("the oldest record held has cursor (none: the log is empty)")
        .addDetails(Any.pack(ErrorInfo.newBuilder().setReason("CURSOR_EXPIRED").putMetadata("oldest_cursor", oldest)
            .build())).build());
    try (OutcomeWatch watch = client.watchOutcomes(WatchOptions.ALL.afterCursor("c1"))) {
      CursorExpiredException e = assertThrows(CursorExpiredException.class, watch::hasNext);
      assertEquals(oldest.isEmpty() ? Optional.empty() : Optional.of(oldest), e.oldestCursor());
      assertEquals(Status.Code.OUT_OF_RANGE, e.getStatus().getCode());
    }
    synchronized (this) {
      assertEquals(1, cursors.size());
    }
  }

  /** The three unary calls: a key's status, every page of keys, one message. */
  @Test
  void statusPagesAndMessageOutcome() {
    log.addAll(delivered(2));
    pages.addAll(List.of(List.of("a", "b"), List.of("c")));
    WriteKeyStatus status = client.getWriteKeyStatus("wk", Region.EU);
    assertEquals("fp-wk", status.getFingerprint());
    assertEquals(WriteKeyState.WRITE_KEY_STATE_REFUSED, status.getState());
    assertEquals(io.segmentsidecar.v1.Region.REGION_EU, status.getRegion());
    List<String> fingerprints = new ArrayList<>();
    for (WriteKeyStatus s : client.writeKeys(WriteKeyState.WRITE_KEY_STATE_REFUSED, 2)) {
      fingerprints.add(s.getFingerprint());
    }
    assertEquals(List.of("a", "b", "c"), fingerprints);
    assertEquals(List.of("", "1"), tokens);
    GetMessageOutcomeResponse found = client.getMessageOutcome("m2");
    assertEquals(MessageState.MESSAGE_STATE_DELIVERED, found.getState());
    assertEquals("c2", found.getOutcome().getCursor());
    assertEquals(MessageState.MESSAGE_STATE_UNKNOWN, client.getMessageOutcome("nope").getState());
  }
}
