package io.segmentsidecar.client;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import com.google.rpc.Code;
import com.google.rpc.RetryInfo;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.StreamObserver;
import io.segmentsidecar.v1.BatchEvent;
import io.segmentsidecar.v1.BatchRequest;
import io.segmentsidecar.v1.BatchResponse;
import io.segmentsidecar.v1.BatchResult;
import io.segmentsidecar.v1.FieldViolation;
import io.segmentsidecar.v1.Rejection;
import io.segmentsidecar.v1.SidecarServiceGrpc;
import io.segmentsidecar.v1.TrackRequest;
import io.segmentsidecar.v1.TrackResponse;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real gRPC SidecarService on a loopback port (or a unix socket) whose answers a test scripts: each call pops the
 * next error of its script and succeeds once the script is empty. It records what it received and when.
 */
final class ScriptedServer implements AutoCloseable {
  final Deque<StatusRuntimeException> trackScript = new ArrayDeque<>();
  final Deque<StatusRuntimeException> batchScript = new ArrayDeque<>();
  final List<TrackRequest> tracks = new ArrayList<>();
  final List<Long> trackNanos = new ArrayList<>();
  final List<BatchRequest> batches = new ArrayList<>();
  /** When set, Track never answers (to test default deadlines). */
  volatile boolean blockTrack;

  private final Server server;
  private final EpollEventLoopGroup epoll;

  private ScriptedServer(Server server, EpollEventLoopGroup epoll) {
    this.server = server;
    this.epoll = epoll;
  }

  /** Starts on a free port of 127.0.0.1. */
  static ScriptedServer onLoopback() throws IOException {
    ScriptedServer[] holder = new ScriptedServer[1];
    Server s = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(new Service(() -> holder[0])).build();
    holder[0] = new ScriptedServer(s, null);
    s.start();
    return holder[0];
  }

  /** Starts on a unix socket at {@code path} (epoll, Linux). */
  static ScriptedServer onUnixSocket(Path path) throws IOException {
    ScriptedServer[] holder = new ScriptedServer[1];
    EpollEventLoopGroup group = new EpollEventLoopGroup(1);
    Server s = NettyServerBuilder.forAddress(new DomainSocketAddress(path.toString()))
        .channelType(EpollServerDomainSocketChannel.class).bossEventLoopGroup(group).workerEventLoopGroup(group)
        // grpc-netty sets SO_KEEPALIVE on accepted connections, which a unix socket lacks (netty would warn).
        .withChildOption(ChannelOption.SO_KEEPALIVE, null)
        .addService(new Service(() -> holder[0])).build();
    holder[0] = new ScriptedServer(s, group);
    s.start();
    return holder[0];
  }

  /** "127.0.0.1:port". */
  String address() {
    return "127.0.0.1:" + server.getPort();
  }

  synchronized List<TrackRequest> tracks() {
    return List.copyOf(tracks);
  }

  synchronized List<Long> trackNanos() {
    return List.copyOf(trackNanos);
  }

  synchronized List<BatchRequest> batches() {
    return List.copyOf(batches);
  }

  /** Stops the server (and its event loop) within a few seconds. */
  @Override
  public void close() {
    server.shutdownNow();
    try {
      server.awaitTermination(5, TimeUnit.SECONDS);
      if (epoll != null) {
        epoll.shutdownGracefully(0, 1, TimeUnit.SECONDS).await(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** UNAVAILABLE with no details. */
  static StatusRuntimeException unavailable() {
    return Status.UNAVAILABLE.withDescription("shutting down").asRuntimeException();
  }

  /** RESOURCE_EXHAUSTED with a RetryInfo asking for {@code delay}. */
  static StatusRuntimeException exhausted(Duration delay) {
    RetryInfo info = RetryInfo.newBuilder().setRetryDelay(com.google.protobuf.Duration.newBuilder()
        .setSeconds(delay.getSeconds()).setNanos(delay.getNano())).build();
    return StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
        .setCode(Code.RESOURCE_EXHAUSTED_VALUE).setMessage("spool full").addDetails(Any.pack(info)).build());
  }

  /** INVALID_ARGUMENT with one BadRequest field violation. */
  static StatusRuntimeException badRequest(String field, String description) {
    BadRequest br = BadRequest.newBuilder().addFieldViolations(
        BadRequest.FieldViolation.newBuilder().setField(field).setDescription(description)).build();
    return StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
        .setCode(Code.INVALID_ARGUMENT_VALUE).setMessage("event rejected").addDetails(Any.pack(br)).build());
  }

  /** The message id of any batch event. */
  static String messageIdOf(BatchEvent e) {
    return switch (e.getEventCase()) {
      case TRACK -> e.getTrack().getMessageId();
      case IDENTIFY -> e.getIdentify().getMessageId();
      case PAGE -> e.getPage().getMessageId();
      case SCREEN -> e.getScreen().getMessageId();
      case GROUP -> e.getGroup().getMessageId();
      case ALIAS -> e.getAlias().getMessageId();
      case EVENT_NOT_SET -> "";
    };
  }

  /** The service: Track and Batch follow the scripts; Batch rejects a track without an event name. */
  private static final class Service extends SidecarServiceGrpc.SidecarServiceImplBase {
    private final java.util.function.Supplier<ScriptedServer> owner;

    Service(java.util.function.Supplier<ScriptedServer> owner) {
      this.owner = owner;
    }

    @Override
    public void track(TrackRequest r, StreamObserver<TrackResponse> out) {
      ScriptedServer s = owner.get();
      StatusRuntimeException err;
      synchronized (s) {
        s.tracks.add(r);
        s.trackNanos.add(System.nanoTime());
        err = s.trackScript.poll();
      }
      if (s.blockTrack) {
        return; // never answer: the client's deadline must end the call
      }
      if (err != null) {
        out.onError(err);
        return;
      }
      out.onNext(TrackResponse.newBuilder().setMessageId(r.getMessageId()).addWarnings(
          io.segmentsidecar.v1.Warning.newBuilder().setCode("spec.test").setField("properties.x")).build());
      out.onCompleted();
    }

    @Override
    public void batch(BatchRequest r, StreamObserver<BatchResponse> out) {
      ScriptedServer s = owner.get();
      StatusRuntimeException err;
      synchronized (s) {
        s.batches.add(r);
        err = s.batchScript.poll();
      }
      if (err != null) {
        out.onError(err);
        return;
      }
      BatchResponse.Builder resp = BatchResponse.newBuilder();
      for (BatchEvent e : r.getEventsList()) {
        if (e.hasTrack() && e.getTrack().getEvent().isEmpty()) {
          resp.addResults(BatchResult.newBuilder().setRejected(Rejection.newBuilder()
              .setCode(Code.INVALID_ARGUMENT_VALUE).setReason("event is required")
              .addFieldViolations(FieldViolation.newBuilder().setField("event").setDescription("required"))));
        } else {
          resp.addResults(BatchResult.newBuilder().setMessageId(messageIdOf(e)));
        }
      }
      out.onNext(resp.build());
      out.onCompleted();
    }
  }
}
