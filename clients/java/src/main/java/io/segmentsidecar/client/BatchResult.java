package io.segmentsidecar.client;

import java.util.List;

/**
 * The outcome of one event of a Batch call.
 *
 * @param messageId the id the event was sent with (the client's own when the event had none)
 * @param warnings findings that did not stop the event
 * @param rejection why the event was rejected, or null when it was spooled
 */
public record BatchResult(String messageId, List<Warning> warnings, InvalidEventException rejection) {

  /** Whether the sidecar spooled the event. */
  public boolean accepted() {
    return rejection == null;
  }
}
