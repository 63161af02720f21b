package io.segmentsidecar.client;

/** The Segment region of a customer's workspace. A write key only works in its own region. */
public enum Region {
  /** The sidecar's configured default region (SIDECAR_DEFAULT_REGION). */
  UNSPECIFIED(io.segmentsidecar.v1.Region.REGION_UNSPECIFIED),
  /** United States. */
  US(io.segmentsidecar.v1.Region.REGION_US),
  /** European Union. */
  EU(io.segmentsidecar.v1.Region.REGION_EU);

  private final io.segmentsidecar.v1.Region proto;

  Region(io.segmentsidecar.v1.Region proto) {
    this.proto = proto;
  }

  io.segmentsidecar.v1.Region toProto() {
    return proto;
  }
}
