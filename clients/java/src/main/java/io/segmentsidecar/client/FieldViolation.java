package io.segmentsidecar.client;

/**
 * A field of an event that broke one of the sidecar's rules.
 *
 * @param field a path into the event, such as "user_id" or "properties.revenue"
 * @param description what is wrong, for a person
 */
public record FieldViolation(String field, String description) {}
