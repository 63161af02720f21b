package io.segmentsidecar.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.segmentsidecar.v1.Rejection;
import java.util.ArrayList;
import java.util.List;

/**
 * The sidecar rejected an event (INVALID_ARGUMENT, or a per-event rejection in a Batch). Retrying the same event can
 * never succeed, so the client never does. It is a {@link StatusRuntimeException}, so code that handles gRPC errors
 * generally still sees it, with its status.
 */
public final class InvalidEventException extends StatusRuntimeException {
  private static final long serialVersionUID = 1L;

  private final String messageId;
  private final String reason;
  private final transient List<FieldViolation> violations;

  InvalidEventException(Status status, String messageId, List<FieldViolation> violations) {
    super(status, null);
    this.messageId = messageId;
    this.reason = status.getDescription();
    this.violations = List.copyOf(violations);
  }

  /** Types an INVALID_ARGUMENT status error, reading its google.rpc.BadRequest field violations. */
  static InvalidEventException fromStatus(StatusRuntimeException ex, String messageId) {
    List<FieldViolation> violations = new ArrayList<>();
    com.google.rpc.Status rich = StatusProto.fromThrowable(ex);
    if (rich != null) {
      for (Any detail : rich.getDetailsList()) {
        if (detail.is(BadRequest.class)) {
          try {
            for (BadRequest.FieldViolation v : detail.unpack(BadRequest.class).getFieldViolationsList()) {
              violations.add(new FieldViolation(v.getField(), v.getDescription()));
            }
          } catch (InvalidProtocolBufferException ignored) {
            // A malformed detail cannot be shown; the status's description still says what went wrong.
          }
        }
      }
    }
    // The status carries the original exception as the cause (its trailers keep the details).
    return new InvalidEventException(ex.getStatus().withCause(ex), messageId, violations);
  }

  /** Types a Batch rejection. */
  static InvalidEventException fromRejection(Rejection r, String messageId) {
    List<FieldViolation> violations = r.getFieldViolationsList().stream()
        .map(v -> new FieldViolation(v.getField(), v.getDescription())).toList();
    return new InvalidEventException(
        Status.fromCodeValue(r.getCode()).withDescription(r.getReason()), messageId, violations);
  }

  /** The id the rejected event was sent with. */
  public String messageId() {
    return messageId;
  }

  /** The gRPC code: INVALID_ARGUMENT, or FAILED_PRECONDITION for a Batch event whose key needs OAuth. */
  public Status.Code code() {
    return getStatus().getCode();
  }

  /** The sidecar's reason, for a person. */
  public String reason() {
    return reason;
  }

  /** Every broken rule, in the sidecar's order. */
  public List<FieldViolation> violations() {
    return violations;
  }

  @Override
  public String getMessage() {
    StringBuilder b = new StringBuilder("event ").append(messageId).append(" rejected (").append(code()).append(")");
    if (violations.isEmpty()) {
      b.append(": ").append(reason);
    }
    for (int i = 0; i < violations.size(); i++) {
      FieldViolation v = violations.get(i);
      b.append(i == 0 ? ": " : "; ").append(v.field()).append(": ").append(v.description());
    }
    return b.toString();
  }
}
