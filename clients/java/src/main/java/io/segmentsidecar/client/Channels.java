package io.segmentsidecar.client;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;

/** Opens the channel to a sidecar address. */
final class Channels {
  private Channels() {}

  /**
   * Opens a plaintext channel. "unix:/path" and "unix:///path" go through grpc-netty-shaded's unix-socket transport
   * (its bundled epoll native library, Linux only); "host:port" through DNS, which answers an IP address at once.
   */
  static ManagedChannel open(String address) {
    String target = address.startsWith("unix:") || address.contains("://") ? address : "dns:///" + address;
    return Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();
  }
}
