package io.segmentsidecar.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.Optional;

/**
 * A watch's cursor is older than the outcome log's window (OUT_OF_RANGE): records were dropped. {@link
 * #oldestCursor()} is the oldest cursor the sidecar still holds, when it said so; watch again without a cursor to
 * read from it.
 */
public final class CursorExpiredException extends StatusRuntimeException {
  private static final long serialVersionUID = 1L;

  /** The google.rpc.ErrorInfo metadata key naming the oldest cursor held. */
  static final String OLDEST_CURSOR_KEY = "oldest_cursor";

  private final String oldestCursor;

  private CursorExpiredException(StatusRuntimeException cause, String oldestCursor) {
    super(cause.getStatus().withCause(cause), cause.getTrailers());
    this.oldestCursor = oldestCursor;
  }

  /** The oldest cursor still held, if the sidecar named it. */
  public Optional<String> oldestCursor() {
    return Optional.ofNullable(oldestCursor);
  }

  /**
   * Types an OUT_OF_RANGE status, with the oldest cursor its ErrorInfo detail names (none when the sidecar holds no
   * record: the value is empty).
   */
  static CursorExpiredException fromStatus(StatusRuntimeException ex) {
    com.google.rpc.Status rich = StatusProto.fromThrowable(ex);
    if (rich != null) {
      for (Any detail : rich.getDetailsList()) {
        if (detail.is(ErrorInfo.class)) {
          try {
            String value = detail.unpack(ErrorInfo.class).getMetadataOrDefault(OLDEST_CURSOR_KEY, "");
            if (!value.isEmpty()) {
              return new CursorExpiredException(ex, value);
            }
          } catch (InvalidProtocolBufferException ignored) {
            // an unreadable detail names nothing
          }
        }
      }
    }
    return new CursorExpiredException(ex, null);
  }

  /** Whether {@code ex} is OUT_OF_RANGE. */
  static boolean matches(StatusRuntimeException ex) {
    return ex.getStatus().getCode() == Status.Code.OUT_OF_RANGE;
  }
}
