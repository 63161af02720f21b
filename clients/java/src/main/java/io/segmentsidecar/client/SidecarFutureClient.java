package io.segmentsidecar.client;

import io.grpc.Channel;
import io.segmentsidecar.v1.AliasResponse;
import io.segmentsidecar.v1.FlushRequest;
import io.segmentsidecar.v1.FlushResponse;
import io.segmentsidecar.v1.GroupResponse;
import io.segmentsidecar.v1.IdentifyResponse;
import io.segmentsidecar.v1.PageResponse;
import io.segmentsidecar.v1.ScreenResponse;
import io.segmentsidecar.v1.TrackResponse;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * A non-blocking client of segment-sidecar: every method returns a {@link CompletableFuture} that completes once the
 * sidecar has spooled the event, after the same retries as {@link SidecarClient} (timed on one daemon thread, never
 * blocking the caller). A rejected event completes it exceptionally with an {@link InvalidEventException}. An
 * argument the client cannot encode (an object field that is not a JSON object, too many batch events) throws
 * {@link IllegalArgumentException} at once, as in the blocking client.
 */
public final class SidecarFutureClient implements AutoCloseable {
  private final Core core;

  SidecarFutureClient(Core core) {
    this.core = core;
  }

  /** Connects to SIDECAR_ADDRESS, else 127.0.0.1:50051, with the default deadlines. */
  public static SidecarFutureClient create() {
    return create(SidecarOptions.defaults());
  }

  /** Connects with the given options. */
  public static SidecarFutureClient create(SidecarOptions options) {
    return new SidecarFutureClient(Core.open(options));
  }

  /** Uses a channel the caller owns (and closes); options.address() is ignored. */
  public static SidecarFutureClient forChannel(Channel channel, SidecarOptions options) {
    return new SidecarFutureClient(Core.over(channel, options));
  }

  /** Records that a user performed an action. */
  public CompletableFuture<Result> track(Track event) {
    String id = Requests.idFor(event);
    var req = Requests.track(event, id);
    return core.<TrackResponse>callAsync(id, core.options.timeout(), (s, o) -> s.track(req, o))
        .thenApply(r -> new Result(id, Warning.fromProto(r.getWarningsList())));
  }

  /** Ties a user to their traits. */
  public CompletableFuture<Result> identify(Identify event) {
    String id = Requests.idFor(event);
    var req = Requests.identify(event, id);
    return core.<IdentifyResponse>callAsync(id, core.options.timeout(), (s, o) -> s.identify(req, o))
        .thenApply(r -> new Result(id, Warning.fromProto(r.getWarningsList())));
  }

  /** Records a web page view. */
  public CompletableFuture<Result> page(Page event) {
    String id = Requests.idFor(event);
    var req = Requests.page(event, id);
    return core.<PageResponse>callAsync(id, core.options.timeout(), (s, o) -> s.page(req, o))
        .thenApply(r -> new Result(id, Warning.fromProto(r.getWarningsList())));
  }

  /** Records a mobile screen view. */
  public CompletableFuture<Result> screen(Screen event) {
    String id = Requests.idFor(event);
    var req = Requests.screen(event, id);
    return core.<ScreenResponse>callAsync(id, core.options.timeout(), (s, o) -> s.screen(req, o))
        .thenApply(r -> new Result(id, Warning.fromProto(r.getWarningsList())));
  }

  /** Associates a user with a group. */
  public CompletableFuture<Result> group(Group event) {
    String id = Requests.idFor(event);
    var req = Requests.group(event, id);
    return core.<GroupResponse>callAsync(id, core.options.timeout(), (s, o) -> s.group(req, o))
        .thenApply(r -> new Result(id, Warning.fromProto(r.getWarningsList())));
  }

  /** Merges a previous identity into a user id. */
  public CompletableFuture<Result> alias(Alias event) {
    String id = Requests.idFor(event);
    var req = Requests.alias(event, id);
    return core.<AliasResponse>callAsync(id, core.options.timeout(), (s, o) -> s.alias(req, o))
        .thenApply(r -> new Result(id, Warning.fromProto(r.getWarningsList())));
  }

  /** Sends events of any type in one call; see {@link SidecarClient#batch}. */
  public CompletableFuture<List<BatchResult>> batch(List<? extends Event> events) {
    WireBatch batch = Core.prepare(events);
    return core.<byte[]>callAsync(null, core.options.timeout(), (s, o) -> Core.batch(s, batch, o))
        .thenApply(r -> Core.results(r, batch.ids()));
  }

  /** Completes when every event the sidecar accepted before the call is delivered or given up on. */
  public CompletableFuture<FlushResult> flush() {
    return core.<FlushResponse>callAsync(null, core.options.flushTimeout(),
        (s, o) -> s.flush(FlushRequest.getDefaultInstance(), o)).thenApply(Core::flushResult);
  }

  /** A blocking client over the same connection (closing either closes both). */
  public SidecarClient blocking() {
    return new SidecarClient(core);
  }

  /** Closes the connection (if the client opened it) and the retry timer. */
  @Override
  public void close() {
    core.close();
  }
}
