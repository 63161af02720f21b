package io.segmentsidecar.client;

import java.util.Collections;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * Collects events from many threads and sends them with the Batch RPC, in batches bounded by count, bytes and delay.
 * One thread sends, in order; when it falls {@code maxPending} batches behind, {@link #add} blocks (back-pressure)
 * rather than buffer without bound. {@link #close} sends what is left and stops the threads; it is safe to call
 * twice. Each call's outcome goes to {@link BatcherOptions#onReport}.
 *
 * <p>Each event is encoded once, in {@link #add}, into the bytes of the Batch call that will carry it; nothing is
 * encoded again when the batch leaves or is retried, and per-event results are built only for an onReport.
 */
public final class Batcher implements AutoCloseable {
  private final Core core;
  private final BatcherOptions options;
  private final BlockingQueue<Pending> queue;
  private final Thread sender;
  private final ScheduledExecutorService timer;

  /** Each thread encodes its event here, outside the lock, then appends the bytes to the buffer under it. */
  private static final ThreadLocal<WireBatch> SCRATCH = ThreadLocal.withInitial(() -> new WireBatch(1024, 1));

  /**
   * The buffer of the last batch sent, for the next batch to write into: a steady stream of batches then reuses two
   * or three buffers instead of making one of about maxEvents events' size per batch.
   */
  private final AtomicReference<byte[]> spareBuffer = new AtomicReference<>();

  /** Guards the buffer and its bookkeeping. */
  private final Object lock = new Object();
  private WireBatch buffer;
  private long generation;
  private ScheduledFuture<?> delayed;
  private boolean closed;

  /**
   * Held (read) by every thread between cutting a batch and queueing it; {@link #close} takes it (write) before
   * queueing the end marker, so no batch is queued after the sender has stopped.
   */
  private final ReentrantReadWriteLock queueing = new ReentrantReadWriteLock();

  /** A cut batch on its way to the sender; {@code request} is null for a flush marker, END for the end. */
  private record Pending(WireBatch request, List<String> ids, CompletableFuture<Void> done) {}

  private static final Pending END = new Pending(null, List.of(), null);

  Batcher(Core core, BatcherOptions options) {
    this.core = core;
    this.options = options;
    this.queue = new ArrayBlockingQueue<>(options.maxPending() + 1);
    this.buffer = new WireBatch(16 * 1024, options.maxEvents());
    this.timer = Executors.newSingleThreadScheduledExecutor(r -> daemon(r, "segment-sidecar-batcher-timer"));
    this.sender = daemon(this::send, "segment-sidecar-batcher");
    sender.start();
  }

  private static Thread daemon(Runnable r, String name) {
    Thread t = new Thread(r, name);
    t.setDaemon(true);
    return t;
  }

  /**
   * Queues an event and returns the message id it will be sent with. Blocks only while the sender is behind.
   *
   * @throws IllegalStateException after {@link #close}
   * @throws CancellationException when interrupted while blocked (the thread's interrupt flag is set again)
   */
  public String add(Event event) {
    WireBatch one = SCRATCH.get();
    one.clear();
    String id = one.add(event);
    Pending cut;
    synchronized (lock) {
      if (closed) {
        throw new IllegalStateException("the batcher is closed");
      }
      if (buffer.count() == 0) {
        long gen = generation;
        delayed = timer.schedule(() -> onDelay(gen), options.maxDelay().toNanos(), TimeUnit.NANOSECONDS);
      }
      buffer.append(one);
      if (buffer.count() < options.maxEvents() && buffer.size() < options.maxBytes()) {
        return id;
      }
      cut = cutLocked(null);
      queueing.readLock().lock();
    }
    enqueueAndUnlock(cut);
    return id;
  }

  /** Cuts the batch whose first event scheduled this, unless it was cut already. */
  private void onDelay(long gen) {
    Pending cut;
    synchronized (lock) {
      if (generation != gen || buffer.count() == 0 || closed) {
        return;
      }
      cut = cutLocked(null);
      queueing.readLock().lock();
    }
    enqueueAndUnlock(cut);
  }

  /** Takes the buffered events as one batch. Called holding {@code lock}. */
  private Pending cutLocked(CompletableFuture<Void> done) {
    Pending p = new Pending(buffer.count() == 0 ? null : buffer, Collections.unmodifiableList(buffer.ids()), done);
    byte[] spare = spareBuffer.getAndSet(null);
    // Sized like the batch just cut, so a steady stream grows no buffer.
    int wanted = Math.min(buffer.size(), options.maxBytes()) + 1024;
    buffer = spare != null && spare.length >= wanted
        ? new WireBatch(spare, options.maxEvents())
        : new WireBatch(wanted, options.maxEvents());
    generation++;
    if (delayed != null) {
      delayed.cancel(false);
      delayed = null;
    }
    return p;
  }

  /** Queues a cut batch, then releases the read lock taken when it was cut. */
  private void enqueueAndUnlock(Pending p) {
    try {
      queue.put(p);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      if (p.done() != null) {
        p.done().cancel(false);
      }
      throw new CancellationException("interrupted while waiting for the batch sender");
    } finally {
      queueing.readLock().unlock();
    }
  }

  /** Sends what is buffered and waits until it, and every batch queued before it, has been sent. */
  public void flush() {
    CompletableFuture<Void> done = new CompletableFuture<>();
    Pending cut;
    synchronized (lock) {
      if (closed) {
        throw new IllegalStateException("the batcher is closed");
      }
      cut = cutLocked(done);
      queueing.readLock().lock();
    }
    enqueueAndUnlock(cut);
    await(done);
  }

  /** Sends what is buffered, waits for the sender to finish and stops the Batcher's threads. */
  @Override
  public void close() {
    CompletableFuture<Void> done = new CompletableFuture<>();
    boolean first;
    Pending cut = null;
    synchronized (lock) {
      first = !closed;
      closed = true;
      if (first) {
        cut = cutLocked(done);
      }
    }
    if (first) {
      // Not shutdownNow: a timer task blocked queueing its batch must finish queueing it, not be interrupted.
      timer.shutdown();
      queueing.writeLock().lock();
      try {
        queue.put(cut);
        queue.put(END);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        sender.interrupt();
        return;
      } finally {
        queueing.writeLock().unlock();
      }
    }
    try {
      sender.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void await(CompletableFuture<Void> done) {
    try {
      done.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CancellationException("interrupted while flushing");
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    }
  }

  /** The sending thread: one Batch call at a time, in queue order, until END. */
  private void send() {
    while (true) {
      Pending p;
      try {
        p = queue.take();
      } catch (InterruptedException e) {
        return;
      }
      if (p == END) {
        return;
      }
      if (p.request() != null) {
        BatchReport report;
        try {
          var resp = core.call(null, core.options.timeout(), s -> Core.batch(s, p.request()));
          report = options.onReport() == null ? null : new BatchReport(p.ids(), Core.results(resp, p.ids()), null);
        } catch (RuntimeException e) {
          report = new BatchReport(p.ids(), null, e);
        }
        if (options.onReport() != null) {
          try {
            options.onReport().accept(report);
          } catch (RuntimeException ignored) {
            // A failing consumer must not stop the sender; the events were sent (or failed) either way.
          }
        }
        // The call is over, retries included: nothing reads these bytes again.
        spareBuffer.set(p.request().releaseBuffer());
      }
      if (p.done() != null) {
        p.done().complete(null);
      }
    }
  }
}
