/**
 * The Java client of segment-sidecar, a local gRPC sidecar that validates, spools and delivers Segment Spec calls.
 *
 * <p>{@link io.segmentsidecar.client.SidecarClient} blocks until the sidecar has spooled an event;
 * {@link io.segmentsidecar.client.SidecarFutureClient} returns {@link java.util.concurrent.CompletableFuture}s; a
 * {@link io.segmentsidecar.client.Batcher} groups events from many threads into Batch calls. All of them generate
 * message ids on the client, retry UNAVAILABLE and RESOURCE_EXHAUSTED with the same ids (honouring
 * google.rpc.RetryInfo, within the deadline) and surface INVALID_ARGUMENT as an
 * {@link io.segmentsidecar.client.InvalidEventException} with its field violations. The generated stubs are in
 * {@code io.segmentsidecar.v1}.
 */
package io.segmentsidecar.client;
