package io.segmentsidecar.client;

import io.segmentsidecar.v1.OutcomeKind;
import java.util.List;
import java.util.Objects;

/**
 * Where a watch of the outcome log starts and which records it wants ({@link SidecarClient#watchOutcomes}).
 *
 * <pre>{@code
 * WatchOptions.ALL.afterCursor(saved).kinds(OutcomeKind.OUTCOME_KIND_DEAD_LETTERED)
 * }</pre>
 *
 * @param afterCursor resume after this cursor; empty starts with the oldest record held (or, with fromNow, after
 *     the newest)
 * @param writeKeys only these write keys' records (the keys themselves); empty for every key
 * @param kinds only records of these kinds; empty for every kind
 * @param fromNow without a cursor yet, start after the newest record
 */
public record WatchOptions(String afterCursor, List<String> writeKeys, List<OutcomeKind> kinds, boolean fromNow) {
  /** Every record, from the oldest held. */
  public static final WatchOptions ALL = new WatchOptions("", List.of(), List.of(), false);

  /** Copies the lists; a null cursor is empty. */
  public WatchOptions {
    afterCursor = afterCursor == null ? "" : afterCursor;
    writeKeys = List.copyOf(Objects.requireNonNull(writeKeys, "writeKeys"));
    kinds = List.copyOf(Objects.requireNonNull(kinds, "kinds"));
  }

  /** These options, resuming after {@code cursor}. */
  public WatchOptions afterCursor(String cursor) {
    return new WatchOptions(cursor, writeKeys, kinds, fromNow);
  }

  /** These options, keeping only the records of these write keys. */
  public WatchOptions writeKeys(String... keys) {
    return new WatchOptions(afterCursor, List.of(keys), kinds, fromNow);
  }

  /** These options, keeping only records of these kinds. */
  public WatchOptions kinds(OutcomeKind... wanted) {
    return new WatchOptions(afterCursor, writeKeys, List.of(wanted), fromNow);
  }

  /** These options, starting after the newest record when there is no cursor yet. */
  public WatchOptions startingNow() {
    return new WatchOptions(afterCursor, writeKeys, kinds, true);
  }
}
