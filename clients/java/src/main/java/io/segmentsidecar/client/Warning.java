package io.segmentsidecar.client;

/**
 * A finding that did not stop the event, such as a Spec property with the wrong type.
 *
 * @param code a stable machine-readable code, such as "spec.property_type"
 * @param field the path the warning is about
 * @param message what is wrong and what to send instead
 */
public record Warning(String code, String field, String message) {

  static java.util.List<Warning> fromProto(java.util.List<io.segmentsidecar.v1.Warning> ws) {
    if (ws.isEmpty()) {
      return java.util.List.of();
    }
    return ws.stream().map(w -> new Warning(w.getCode(), w.getField(), w.getMessage())).toList();
  }
}
