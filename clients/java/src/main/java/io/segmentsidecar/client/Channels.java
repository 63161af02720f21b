package io.segmentsidecar.client;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;

/** Opens the channel to a sidecar address. */
final class Channels {
  private Channels() {}

  /**
   * Opens a plaintext channel. "unix:/path" and "unix:///path" go through grpc-netty-shaded's unix-socket transport
   * (its bundled epoll native library, Linux only); "host:port" through DNS, which answers an IP address at once.
   */
  static ManagedChannel open(String address) {
    boolean unix = address.startsWith("unix:");
    String target = unix || address.contains("://") ? address : "dns:///" + address;
    ManagedChannelBuilder<?> builder = Grpc.newChannelBuilder(target, InsecureChannelCredentials.create());
    if (unix && builder instanceof NettyChannelBuilder netty) {
      // grpc-netty sets SO_KEEPALIVE on every connection; a unix socket has no such option, and netty then warns
      // "Unknown channel option 'SO_KEEPALIVE'" each time. A null value removes the option.
      netty.withOption(ChannelOption.SO_KEEPALIVE, null);
    }
    return builder.build();
  }
}
