package io.segmentsidecar.client;

import java.util.List;

/**
 * The sidecar's acknowledgement of an event: it is durably spooled and will be delivered at least once.
 *
 * @param messageId the id the event was sent with
 * @param warnings findings that did not stop the event
 */
public record Result(String messageId, List<Warning> warnings) {}
