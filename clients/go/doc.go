// Package sidecar is the Go client of segment-sidecar, a local gRPC sidecar that validates, spools and delivers
// Segment Spec calls (track, identify, page, screen, group, alias) to Segment's Tracking API.
//
// A Client makes one call per event; a Batcher groups events from many goroutines into Batch calls. Both:
//   - take properties and traits as map[string]any or any json.Marshal-able struct (sent as JSON bytes, integers
//     kept exact), or as a *structpb.Struct;
//   - give every event a UUIDv7 message id on the client unless it has one, so a retried call is de-duplicated;
//   - retry UNAVAILABLE, RESOURCE_EXHAUSTED and a CANCELLED they did not cause with the same message ids, at most
//     5 attempts with full jitter, waiting at least what the sidecar's google.rpc.RetryInfo asks, never past the
//     call's deadline (DefaultTimeout when the context has none): see RetryPolicy;
//   - never retry INVALID_ARGUMENT, which they return as an *InvalidEventError with its field violations.
//
// The client connects to SIDECAR_ADDRESS, else 127.0.0.1:50051; "unix:/path/to/socket" addresses work too.
// The generated stubs live in the gen/segment/sidecar/v1 package (sidecarv1) for callers who need the raw API.
package sidecar
