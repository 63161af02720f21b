/** Where the sidecar listens: an explicit address, SIDECAR_ADDRESS, or 127.0.0.1:50051. */

/** The address used when neither the caller nor SIDECAR_ADDRESS names one. */
export const DEFAULT_ADDRESS = "127.0.0.1:50051";

/** The gRPC target: `host:port`, or `unix:/path/to.sock` for a unix socket (`unix:///path` also works). */
export function resolveAddress(address?: string, env: NodeJS.ProcessEnv = process.env): string {
  return (address || env.SIDECAR_ADDRESS || DEFAULT_ADDRESS).trim();
}

/** Options of the channels the client creates. */
export const CHANNEL_OPTIONS = {
  // The sidecar is local: reconnect quickly after it restarts instead of gRPC's default backoff of up to 120 s,
  // during which every call would fail UNAVAILABLE without trying.
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 2000,
  // A Batch may carry up to 16 MiB.
  "grpc.max_send_message_length": 17 * 2 ** 20,
};
