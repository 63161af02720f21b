package io.segmentsidecar.client;

import io.grpc.Channel;
import io.segmentsidecar.v1.FlushRequest;
import io.segmentsidecar.v1.GetMessageOutcomeRequest;
import io.segmentsidecar.v1.GetMessageOutcomeResponse;
import io.segmentsidecar.v1.GetWriteKeyStatusRequest;
import io.segmentsidecar.v1.ListWriteKeysRequest;
import io.segmentsidecar.v1.ListWriteKeysResponse;
import io.segmentsidecar.v1.WriteKeyState;
import io.segmentsidecar.v1.WriteKeyStatus;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * A blocking client of segment-sidecar. Each method returns once the sidecar has durably spooled the event, retrying
 * UNAVAILABLE and RESOURCE_EXHAUSTED with the same message id until the options' deadline. A rejected event throws
 * {@link InvalidEventException}; any other failure throws the {@link io.grpc.StatusRuntimeException} of the last
 * attempt. Thread-safe: make one per process and close it at exit.
 *
 * <pre>{@code
 * try (SidecarClient client = SidecarClient.create()) {
 *   client.track(Track.builder().writeKey(key).userId("user-42").event("Email Opened")
 *       .properties(Map.of("email_id", "e-1")).build());
 * }
 * }</pre>
 */
public final class SidecarClient implements AutoCloseable {
  /** The most events one Batch call may carry (the sidecar also caps a call at 16 MiB). */
  public static final int MAX_BATCH_EVENTS = 10_000;

  private final Core core;

  SidecarClient(Core core) {
    this.core = core;
  }

  /** Connects to SIDECAR_ADDRESS, else 127.0.0.1:50051, with the default deadlines. */
  public static SidecarClient create() {
    return create(SidecarOptions.defaults());
  }

  /** Connects with the given options. The connection is made on the first call and re-made as needed. */
  public static SidecarClient create(SidecarOptions options) {
    return new SidecarClient(Core.open(options));
  }

  /** Uses a channel the caller owns (and closes); options.address() is ignored. */
  public static SidecarClient forChannel(Channel channel, SidecarOptions options) {
    return new SidecarClient(Core.over(channel, options));
  }

  /** The options in force. */
  public SidecarOptions options() {
    return core.options;
  }

  /** Records that a user performed an action. */
  public Result track(Track event) {
    String id = Requests.idFor(event);
    var req = Requests.track(event, id);
    var resp = core.call(id, core.options.timeout(), s -> s.track(req));
    return new Result(id, Warning.fromProto(resp.getWarningsList()));
  }

  /** Ties a user to their traits. */
  public Result identify(Identify event) {
    String id = Requests.idFor(event);
    var req = Requests.identify(event, id);
    var resp = core.call(id, core.options.timeout(), s -> s.identify(req));
    return new Result(id, Warning.fromProto(resp.getWarningsList()));
  }

  /** Records a web page view. */
  public Result page(Page event) {
    String id = Requests.idFor(event);
    var req = Requests.page(event, id);
    var resp = core.call(id, core.options.timeout(), s -> s.page(req));
    return new Result(id, Warning.fromProto(resp.getWarningsList()));
  }

  /** Records a mobile screen view. */
  public Result screen(Screen event) {
    String id = Requests.idFor(event);
    var req = Requests.screen(event, id);
    var resp = core.call(id, core.options.timeout(), s -> s.screen(req));
    return new Result(id, Warning.fromProto(resp.getWarningsList()));
  }

  /** Associates a user with a group. */
  public Result group(Group event) {
    String id = Requests.idFor(event);
    var req = Requests.group(event, id);
    var resp = core.call(id, core.options.timeout(), s -> s.group(req));
    return new Result(id, Warning.fromProto(resp.getWarningsList()));
  }

  /** Merges a previous identity into a user id. */
  public Result alias(Alias event) {
    String id = Requests.idFor(event);
    var req = Requests.alias(event, id);
    var resp = core.call(id, core.options.timeout(), s -> s.alias(req));
    return new Result(id, Warning.fromProto(resp.getWarningsList()));
  }

  /**
   * Sends events of any type in one call and returns one result per event, in order. An invalid event does not
   * reject the others: its result carries the rejection. Throws only for the whole call (after retries with the
   * same message ids).
   */
  public List<BatchResult> batch(List<? extends Event> events) {
    WireBatch batch = Core.prepare(events);
    var resp = core.call(null, core.options.timeout(), s -> Core.batch(s, batch));
    return Core.results(resp, batch.ids());
  }

  /** Waits until every event the sidecar accepted before the call is delivered or given up on. */
  public FlushResult flush() {
    var resp = core.call(null, core.options.flushTimeout(), s -> s.flush(FlushRequest.getDefaultInstance()));
    return Core.flushResult(resp);
  }

  /**
   * What the sidecar knows of one write key in one region: its state (OK, REFUSED since when, RETRYING, UNKNOWN),
   * backlog, last delivery and dead letters by reason. Retried like every call.
   */
  public WriteKeyStatus getWriteKeyStatus(String writeKey, Region region) {
    var req = GetWriteKeyStatusRequest.newBuilder().setWriteKey(writeKey).setRegion(region.toProto()).build();
    return core.call(null, core.options.timeout(), s -> s.getWriteKeyStatus(req)).getStatus();
  }

  /**
   * One page of every write key's status, named by fingerprint (never the key), ordered by fingerprint and region.
   *
   * @param state only keys in this state; WRITE_KEY_STATE_UNSPECIFIED for every key
   * @param pageSize at most this many keys (0: the sidecar's default, 100)
   * @param pageToken the previous page's next_page_token; empty for the first page
   */
  public ListWriteKeysResponse listWriteKeys(WriteKeyState state, int pageSize, String pageToken) {
    var req = ListWriteKeysRequest.newBuilder().setState(state).setPageSize(pageSize).setPageToken(pageToken).build();
    return core.call(null, core.options.timeout(), s -> s.listWriteKeys(req));
  }

  /** Every write key's status in {@code state}, page after page (each page one call, made as iteration needs it). */
  public Iterable<WriteKeyStatus> writeKeys(WriteKeyState state, int pageSize) {
    return () -> new Iterator<>() {
      private Iterator<WriteKeyStatus> page = List.<WriteKeyStatus>of().iterator();
      private String token = "";
      private boolean last;

      @Override
      public boolean hasNext() {
        while (!page.hasNext() && !last) {
          ListWriteKeysResponse resp = listWriteKeys(state, pageSize, token);
          page = resp.getWriteKeysList().iterator();
          token = resp.getNextPageToken();
          last = token.isEmpty();
        }
        return page.hasNext();
      }

      @Override
      public WriteKeyStatus next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        return page.next();
      }
    };
  }

  /** Where one event is: waiting, in flight, delivered, dead-lettered, expired, or unknown within the window. */
  public GetMessageOutcomeResponse getMessageOutcome(String messageId) {
    return getMessageOutcome(messageId, "");
  }

  /** {@link #getMessageOutcome(String)} for the event of one write key (when keys may share message ids). */
  public GetMessageOutcomeResponse getMessageOutcome(String messageId, String writeKey) {
    var req = GetMessageOutcomeRequest.newBuilder().setMessageId(messageId).setWriteKey(writeKey).build();
    return core.call(null, core.options.timeout(), s -> s.getMessageOutcome(req));
  }

  /**
   * Follows the outcome log: every record after {@code options.afterCursor()}, then new ones as they come, as a
   * blocking iterator that resumes by itself after a dropped stream or a sidecar restart (see {@link OutcomeWatch}).
   *
   * <pre>{@code
   * try (OutcomeWatch watch = client.watchOutcomes(WatchOptions.ALL.afterCursor(saved))) {
   *   while (watch.hasNext()) {
   *     Outcome outcome = watch.next();
   *     saved = outcome.getCursor();
   *   }
   * }
   * }</pre>
   */
  public OutcomeWatch watchOutcomes(WatchOptions options) {
    return new OutcomeWatch(core, core.blockingStub(), options);
  }

  /** A future-based client over the same connection (closing either closes both). */
  public SidecarFutureClient futures() {
    return new SidecarFutureClient(core);
  }

  /** A client over the same connection whose calls get {@code timeout} as their deadline. */
  public SidecarClient withTimeout(Duration timeout) {
    return new SidecarClient(core.withOptions(core.options.toBuilder().timeout(timeout).build()));
  }

  /** Starts a {@link Batcher} that sends through this client's connection. */
  public Batcher newBatcher(BatcherOptions options) {
    return new Batcher(core, options);
  }

  /** Closes the connection (if the client opened it). */
  @Override
  public void close() {
    core.close();
  }
}
