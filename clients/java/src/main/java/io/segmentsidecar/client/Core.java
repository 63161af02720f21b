package io.segmentsidecar.client;

import io.grpc.Channel;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import io.segmentsidecar.v1.BatchResponse;
import io.segmentsidecar.v1.FlushResponse;
import io.segmentsidecar.v1.SidecarServiceGrpc;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import java.util.function.Function;

/**
 * What the blocking and the future client share: the channel, the options, the retry loops and the mapping of
 * responses. The retry decision itself is {@link RetryPolicy#nextWait}.
 */
final class Core implements AutoCloseable {
  final SidecarOptions options;
  private final Channel channel;
  private final ManagedChannel ownedChannel;
  private final SidecarServiceGrpc.SidecarServiceBlockingStub blocking;
  private final SidecarServiceGrpc.SidecarServiceStub async;
  private volatile ScheduledExecutorService scheduler;
  private volatile boolean closed;

  private Core(SidecarOptions options, Channel channel, ManagedChannel owned) {
    this.options = options;
    this.channel = channel;
    this.ownedChannel = owned;
    this.blocking = SidecarServiceGrpc.newBlockingStub(channel);
    this.async = SidecarServiceGrpc.newStub(channel);
  }

  /** A core that owns a new channel to options.address(). */
  static Core open(SidecarOptions options) {
    ManagedChannel channel = Channels.open(options.address());
    return new Core(options, channel, channel);
  }

  /** A core over a channel the caller owns. */
  static Core over(Channel channel, SidecarOptions options) {
    return new Core(options, channel, null);
  }

  /** A core over the same channel with other options; closing it leaves the channel open. */
  Core withOptions(SidecarOptions other) {
    return new Core(other, channel, null);
  }

  /** Whether {@link #close()} was called. */
  boolean isClosed() {
    return closed;
  }

  /** The blocking stub without a deadline (a watch runs until its caller closes it). */
  SidecarServiceGrpc.SidecarServiceBlockingStub blockingStub() {
    return blocking;
  }

  /** The single daemon thread that times retries of the future client, created on first use. */
  ScheduledExecutorService scheduler() {
    ScheduledExecutorService s = scheduler;
    if (s == null) {
      synchronized (this) {
        s = scheduler;
        if (s == null) {
          s = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "segment-sidecar-retry");
            t.setDaemon(true);
            return t;
          });
          scheduler = s;
        }
      }
    }
    return s;
  }

  /** Runs a blocking call with its deadline and retries; types INVALID_ARGUMENT for the event {@code id}. */
  <R> R call(String id, Duration timeout, Function<SidecarServiceGrpc.SidecarServiceBlockingStub, R> rpc) {
    Deadline deadline = Deadline.after(timeout.toNanos(), TimeUnit.NANOSECONDS);
    long started = System.nanoTime();
    for (int attempt = 1; ; attempt++) {
      try {
        return rpc.apply(blocking.withDeadline(deadline));
      } catch (StatusRuntimeException ex) {
        // A call its caller cancelled (its gRPC Context, or the client closed) is not retried, whatever gRPC answered.
        boolean cancelledByCaller = closed || Context.current().isCancelled();
        Optional<Duration> wait =
            cancelledByCaller ? Optional.empty() : options.retryPolicy().nextWait(ex, attempt, deadline);
        if (wait.isEmpty()) {
          throw gaveUp(ex, id, attempt, started);
        }
        try {
          Thread.sleep(wait.get().toMillis(), wait.get().toNanosPart() % 1_000_000);
        } catch (InterruptedException interrupted) {
          Thread.currentThread().interrupt();
          throw Status.CANCELLED.withDescription("interrupted while waiting to retry").withCause(interrupted)
              .asRuntimeException();
        }
      }
    }
  }

  /** The asynchronous form of {@link #call}: retries are timed on {@link #scheduler()}. */
  <R> CompletableFuture<R> callAsync(
      String id, Duration timeout, BiConsumer<SidecarServiceGrpc.SidecarServiceStub, StreamObserver<R>> rpc) {
    Deadline deadline = Deadline.after(timeout.toNanos(), TimeUnit.NANOSECONDS);
    CompletableFuture<R> result = new CompletableFuture<>();
    attemptAsync(id, deadline, rpc, result, 1, System.nanoTime());
    return result;
  }

  private <R> void attemptAsync(String id, Deadline deadline,
      BiConsumer<SidecarServiceGrpc.SidecarServiceStub, StreamObserver<R>> rpc, CompletableFuture<R> result,
      int attempt, long started) {
    if (result.isDone()) {
      return; // cancelled by the caller: no further attempt
    }
    StreamObserver<R> observer = new StreamObserver<R>() {
      private R value;

      @Override
      public void onNext(R v) {
        value = v;
      }

      @Override
      public void onError(Throwable t) {
        try {
          if (result.isDone()) {
            return; // cancelled by the caller: no further attempt
          }
          Optional<Duration> wait = closed ? Optional.empty() : options.retryPolicy().nextWait(t, attempt, deadline);
          if (wait.isEmpty()) {
            result.completeExceptionally(t instanceof StatusRuntimeException s ? gaveUp(s, id, attempt, started) : t);
            return;
          }
          scheduler().schedule(() -> attemptAsync(id, deadline, rpc, result, attempt + 1, started),
              wait.get().toNanos(), TimeUnit.NANOSECONDS);
        } catch (RuntimeException unexpected) {
          // Whatever goes wrong here, the caller's future must complete (RejectedExecution after close, ...).
          unexpected.addSuppressed(t);
          result.completeExceptionally(unexpected);
        }
      }

      @Override
      public void onCompleted() {
        result.complete(value);
      }
    };
    try {
      rpc.accept(async.withDeadline(deadline), observer);
    } catch (RuntimeException e) {
      result.completeExceptionally(e);
    }
  }

  /**
   * The exception for a call's last failure: a retryable status becomes a {@link RetriesExhaustedException} that
   * counts the attempts (and names the address when the sidecar could not be reached), INVALID_ARGUMENT an
   * {@link InvalidEventException}; anything else is left as it is.
   */
  StatusRuntimeException gaveUp(StatusRuntimeException ex, String id, int attempts, long startedNanos) {
    if (RetryPolicy.retryable(ex.getStatus().getCode())) {
      return new RetriesExhaustedException(ex, options.address(), attempts,
          Duration.ofNanos(System.nanoTime() - startedNanos));
    }
    return typed(ex, id);
  }

  /** Types an INVALID_ARGUMENT status; leaves other errors as they are. */
  static StatusRuntimeException typed(StatusRuntimeException ex, String id) {
    if (ex.getStatus().getCode() == Status.Code.INVALID_ARGUMENT) {
      return InvalidEventException.fromStatus(ex, id);
    }
    return ex;
  }

  /** Encodes events for a Batch call, fixing a message id for each. */
  static WireBatch prepare(List<? extends Event> events) {
    if (events.size() > SidecarClient.MAX_BATCH_EVENTS) {
      throw new IllegalArgumentException(
          events.size() + " events in one batch, at most " + SidecarClient.MAX_BATCH_EVENTS);
    }
    WireBatch batch = new WireBatch(512 * events.size(), events.size());
    for (Event e : events) {
      batch.add(e);
    }
    return batch;
  }

  /** One blocking Batch call, sending the batch's bytes as they are, with the stub's deadline and interceptors. */
  static byte[] batch(SidecarServiceGrpc.SidecarServiceBlockingStub stub, WireBatch batch) {
    return ClientCalls.blockingUnaryCall(stub.getChannel(), WireBatch.BATCH, stub.getCallOptions(), batch);
  }

  /** The asynchronous form of {@link #batch}. */
  static void batch(SidecarServiceGrpc.SidecarServiceStub stub, WireBatch batch, StreamObserver<byte[]> o) {
    ClientCalls.asyncUnaryCall(stub.getChannel().newCall(WireBatch.BATCH, stub.getCallOptions()), batch, o);
  }

  /** Parses a BatchResponse and maps it onto the events' ids. */
  static List<BatchResult> results(byte[] bytes, List<String> ids) {
    BatchResponse resp;
    try {
      resp = BatchResponse.parseFrom(bytes);
    } catch (com.google.protobuf.InvalidProtocolBufferException ex) {
      throw Status.INTERNAL.withDescription("the sidecar's BatchResponse does not parse: " + ex.getMessage())
          .withCause(ex).asRuntimeException();
    }
    if (resp.getResultsCount() != ids.size()) {
      throw Status.INTERNAL.withDescription(resp.getResultsCount() + " results for " + ids.size() + " events")
          .asRuntimeException();
    }
    List<BatchResult> out = new ArrayList<>(ids.size());
    for (int i = 0; i < ids.size(); i++) {
      io.segmentsidecar.v1.BatchResult r = resp.getResults(i);
      InvalidEventException rejection = r.hasRejected()
          ? InvalidEventException.fromRejection(r.getRejected(), ids.get(i)) : null;
      out.add(new BatchResult(ids.get(i), Warning.fromProto(r.getWarningsList()), rejection));
    }
    return List.copyOf(out);
  }

  static FlushResult flushResult(FlushResponse r) {
    return new FlushResult(r.getDelivered(), r.getDeadLettered(), r.getParked(),
        List.copyOf(r.getParkedWriteKeyHashesList()));
  }

  @Override
  public void close() {
    closed = true;
    ScheduledExecutorService s = scheduler;
    if (s != null) {
      s.shutdownNow();
    }
    if (ownedChannel != null) {
      ownedChannel.shutdown();
      try {
        if (!ownedChannel.awaitTermination(5, TimeUnit.SECONDS)) {
          ownedChannel.shutdownNow();
        }
      } catch (InterruptedException e) {
        ownedChannel.shutdownNow();
        Thread.currentThread().interrupt();
      }
    }
  }
}
