/**
 * A real grpc-js server that speaks the sidecar's API and fails as scripted: fail with this status and these
 * details, then succeed. Not the sidecar: it tests retries, deadlines and typed errors exactly over a real socket.
 */
import {
  Metadata,
  Server,
  type ServerUnaryCall,
  type sendUnaryData,
  ServerCredentials,
  status,
} from "@grpc/grpc-js";
import { BadRequest, RetryInfo } from "../src/gen/google/rpc/error_details";
import { Status } from "../src/gen/google/rpc/status";
import * as pb from "../src/gen/segment/sidecar/v1/sidecar";

/** One scripted failure. */
export interface Failure {
  code: status;
  message?: string;
  retryDelayMs?: number;
  violations?: [string, string][];
  /** A grpc-retry-pushback-ms trailer to send. */
  pushbackMs?: number;
}

/** The trailers of a failure: google.rpc.Status in grpc-status-details-bin. */
export function trailers(failure: Failure): Metadata {
  const details = [];
  if (failure.retryDelayMs !== undefined) {
    const ms = failure.retryDelayMs;
    const value = RetryInfo.encode({ retryDelay: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 } }).finish();
    details.push({ typeUrl: "type.googleapis.com/google.rpc.RetryInfo", value: Buffer.from(value) });
  }
  if (failure.violations) {
    const fieldViolations = failure.violations.map(([field, description]) => ({
      field,
      description,
      reason: "",
      localizedMessage: undefined,
    }));
    const value = BadRequest.encode({ fieldViolations }).finish();
    details.push({ typeUrl: "type.googleapis.com/google.rpc.BadRequest", value: Buffer.from(value) });
  }
  const metadata = new Metadata();
  const rich = Status.encode({ code: failure.code, message: failure.message ?? "scripted failure", details });
  metadata.set("grpc-status-details-bin", Buffer.from(rich.finish()));
  if (failure.pushbackMs !== undefined) {
    metadata.set("grpc-retry-pushback-ms", String(failure.pushbackMs));
  }
  return metadata;
}

/** What the server saw: the method, the request and when it arrived (performance.now()). */
export interface Seen {
  method: string;
  request: any;
  at: number;
}

/** A started scripted server. */
export interface Scripted {
  address: string;
  failures: Failure[];
  seen: Seen[];
  stop(): Promise<void>;
}

/** The event name the server rejects as INVALID_ARGUMENT (unary) or with a Rejection (batch). */
export const BAD_EVENT = "Bad Event";

/** Start a scripted server on `bind` (default a loopback port). */
export async function startScripted(bind = "127.0.0.1:0"): Promise<Scripted> {
  const server = new Server();
  const state: Scripted = { address: "", failures: [], seen: [], stop: async () => {} };

  function answer<Req, Res>(method: string, respond: (request: Req) => Res) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const request = call.request as Req & { event?: string };
      state.seen.push({ method, request, at: performance.now() });
      if (method === "Track" && request.event === BAD_EVENT) {
        const failure = { code: status.INVALID_ARGUMENT, message: "event: no", violations: [["event", "no"]] } as Failure;
        callback({ code: failure.code, details: failure.message, metadata: trailers(failure) });
        return;
      }
      const failure = state.failures.shift();
      if (failure) {
        callback({ code: failure.code, details: failure.message ?? "scripted failure", metadata: trailers(failure) });
        return;
      }
      callback(null, respond(call.request));
    };
  }

  const ack = (request: { messageId: string }) => ({ messageId: request.messageId, warnings: [] });
  server.addService(pb.SidecarServiceService, {
    track: answer("Track", ack),
    identify: answer("Identify", ack),
    page: answer("Page", ack),
    screen: answer("Screen", ack),
    group: answer("Group", ack),
    alias: answer("Alias", ack),
    batch: answer("Batch", (request: pb.BatchRequest): pb.BatchResponse => ({
      results: request.events.map((item) => {
        const inner = (item.track ?? item.identify ?? item.page ?? item.screen ?? item.group ?? item.alias)!;
        if (item.track?.event === BAD_EVENT) {
          const rejected = { code: 3, reason: "event: no", fieldViolations: [{ field: "event", description: "no" }] };
          return { rejected, warnings: [] };
        }
        return { messageId: inner.messageId, warnings: [] };
      }),
      accepted: 0,
      rejected: 0,
    })),
    flush: answer("Flush", () => ({ delivered: 0, deadLettered: 0, parked: 0, parkedWriteKeyHashes: [] })),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(bind, ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  state.address = bind.startsWith("unix:") ? bind : `127.0.0.1:${port}`;
  state.stop = () => new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  return state;
}
