package io.segmentsidecar.client;

import java.time.Duration;
import java.util.function.Consumer;

/**
 * Bounds a {@link Batcher}'s batches in size and time.
 *
 * @param maxEvents send a batch once it holds this many events (at most {@link SidecarClient#MAX_BATCH_EVENTS})
 * @param maxBytes send a batch once its encoded events reach this size (the sidecar's cap is 16 MiB)
 * @param maxDelay send a batch at most this long after its first event was added
 * @param maxPending how many cut batches may wait for the sender before {@link Batcher#add} blocks
 * @param onReport receives the outcome of every Batch call, on the Batcher's sending thread; it must not call the
 *     Batcher (may be null)
 */
public record BatcherOptions(
    int maxEvents, int maxBytes, Duration maxDelay, int maxPending, Consumer<BatchReport> onReport) {

  /** 500 events, 4 MiB, 200 ms, 4 pending batches, no reports. */
  public static final BatcherOptions DEFAULT =
      new BatcherOptions(500, 4 << 20, Duration.ofMillis(200), 4, null);

  /** Validates the bounds. */
  public BatcherOptions {
    if (maxEvents < 1 || maxEvents > SidecarClient.MAX_BATCH_EVENTS || maxBytes < 1 || maxPending < 1
        || maxDelay == null || maxDelay.isNegative() || maxDelay.isZero()) {
      throw new IllegalArgumentException("invalid batcher options");
    }
  }

  /** These options with another count bound. */
  public BatcherOptions withMaxEvents(int n) {
    return new BatcherOptions(n, maxBytes, maxDelay, maxPending, onReport);
  }

  /** These options with another byte bound. */
  public BatcherOptions withMaxBytes(int n) {
    return new BatcherOptions(maxEvents, n, maxDelay, maxPending, onReport);
  }

  /** These options with another time bound. */
  public BatcherOptions withMaxDelay(Duration d) {
    return new BatcherOptions(maxEvents, maxBytes, d, maxPending, onReport);
  }

  /** These options with another report consumer. */
  public BatcherOptions withOnReport(Consumer<BatchReport> consumer) {
    return new BatcherOptions(maxEvents, maxBytes, maxDelay, maxPending, consumer);
  }
}
