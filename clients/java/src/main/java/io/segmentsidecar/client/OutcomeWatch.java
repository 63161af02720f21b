package io.segmentsidecar.client;

import io.grpc.Context;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import io.segmentsidecar.v1.Outcome;
import io.segmentsidecar.v1.SidecarServiceGrpc;
import io.segmentsidecar.v1.WatchOutcomesRequest;
import io.segmentsidecar.v1.WatchOutcomesResponse;
import java.time.Duration;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A blocking iterator over the outcome log ({@link SidecarClient#watchOutcomes}); close it to stop.
 *
 * <p>It resumes by itself: after UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED it did not cause, or a stream the
 * sidecar ended (a restart, a dropped connection), it reconnects with the cursor of the last record {@link #next()}
 * returned, so nothing is missed and nothing comes twice. Before its first record it resumes from the cursor the
 * sidecar said the stream started after (its {@code outcome-start-cursor} header), so a {@link
 * WatchOptions#startingNow()} or filtered watch lost early misses nothing written meanwhile. Unlike a unary call it
 * does not give up after the retry policy's attempts: it reconnects for as long as the caller iterates, waiting the
 * policy's backoff (its bound doubles up to maxBackoff, 2 s by default, and starts again after every record; at
 * least the server's RetryInfo).
 *
 * <p>{@link #hasNext()} blocks until a record comes; it returns false once the watch or its client is closed (from
 * any thread), and throws {@link CursorExpiredException} when the cursor is older than the outcome log's window, or
 * the {@link StatusRuntimeException} of any other failure. Not for use by several threads at once, except {@link
 * #close()}.
 */
public final class OutcomeWatch implements Iterator<Outcome>, AutoCloseable {
  /** The response header naming the cursor a WatchOutcomes stream starts after. */
  private static final Metadata.Key<String> START_CURSOR =
      Metadata.Key.of("outcome-start-cursor", Metadata.ASCII_STRING_MARSHALLER);

  private final Core core;
  private final SidecarServiceGrpc.SidecarServiceBlockingStub stub;
  private final WatchOptions options;
  private String cursor;
  private int failures;
  private Outcome next;
  private Iterator<WatchOutcomesResponse> stream;
  private AtomicReference<Metadata> headers = new AtomicReference<>(); // the current stream's, once they came
  private volatile Context.CancellableContext context;
  private volatile boolean closed;

  OutcomeWatch(Core core, SidecarServiceGrpc.SidecarServiceBlockingStub stub, WatchOptions options) {
    this.core = core;
    this.stub = stub;
    this.options = options;
    this.cursor = options.afterCursor();
  }

  /**
   * The cursor of the last record returned, or before the first the options' cursor, or else the cursor the sidecar
   * said the stream started after (empty until its headers came): save it to resume later.
   */
  public String cursor() {
    return cursor;
  }

  @Override
  public boolean hasNext() {
    while (next == null) {
      if (closed || core.isClosed()) {
        return false;
      }
      StatusRuntimeException error = null;
      try {
        if (stream == null) {
          open();
        }
        boolean more = stream.hasNext();
        takeStartCursor();
        if (more) {
          next = stream.next().getOutcome();
          failures = 0;
          return true;
        }
      } catch (StatusRuntimeException e) {
        takeStartCursor();
        error = e;
      }
      stopStream();
      if (closed || core.isClosed()) {
        return false;
      }
      if (error != null && CursorExpiredException.matches(error)) {
        throw CursorExpiredException.fromStatus(error);
      }
      if (error != null && !RetryPolicy.retryable(error.getStatus().getCode())) {
        throw error;
      }
      failures++;
      RetryPolicy policy = core.options.retryPolicy();
      Duration own = policy.backoff(failures);
      Duration server = error == null ? Duration.ZERO : RetryPolicy.serverDelay(error);
      Duration wait = server.compareTo(own) > 0 ? server : own;
      try {
        Thread.sleep(wait.toMillis(), wait.toNanosPart() % 1_000_000);
      } catch (InterruptedException interrupted) {
        Thread.currentThread().interrupt();
        throw Status.CANCELLED.withDescription("interrupted while waiting to reconnect").withCause(interrupted)
            .asRuntimeException();
      }
    }
    return true;
  }

  @Override
  public Outcome next() {
    if (!hasNext()) {
      throw new NoSuchElementException("the watch is closed");
    }
    Outcome outcome = next;
    next = null;
    cursor = outcome.getCursor();
    return outcome;
  }

  /**
   * Without a cursor yet, keeps the current stream's start cursor, so that a reconnect resumes there rather than from
   * now again (a sidecar that sends none leaves the cursor empty). Called once the stream gave a record or ended:
   * its headers came before either.
   */
  private void takeStartCursor() {
    Metadata received = headers.get();
    String start = received == null ? null : received.get(START_CURSOR);
    if (cursor.isEmpty() && start != null) {
      cursor = start;
    }
  }

  private void open() {
    WatchOutcomesRequest request = WatchOutcomesRequest.newBuilder()
        .setAfterCursor(cursor).addAllWriteKeys(options.writeKeys()).addAllKinds(options.kinds())
        .setFromNow(options.fromNow() && cursor.isEmpty()).build();
    Context.CancellableContext ctx = Context.current().withCancellation();
    context = ctx;
    if (closed) {
      ctx.cancel(null);
    }
    Context previous = ctx.attach();
    try {
      headers = new AtomicReference<>();
      stream = stub.withInterceptors(MetadataUtils.newCaptureMetadataInterceptor(headers, new AtomicReference<>()))
          .watchOutcomes(request);
    } finally {
      ctx.detach(previous);
    }
  }

  private void stopStream() {
    stream = null;
    Context.CancellableContext ctx = context;
    if (ctx != null) {
      ctx.cancel(null);
    }
  }

  /** Ends the watch (a blocked {@link #hasNext()} returns false). Idempotent; safe from any thread. */
  @Override
  public void close() {
    closed = true;
    Context.CancellableContext ctx = context;
    if (ctx != null) {
      ctx.cancel(null);
    }
  }
}
