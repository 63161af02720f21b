package io.segmentsidecar.client;

import java.security.SecureRandom;

/**
 * Message ids: version 7 UUIDs (RFC 9562: 48 bits of Unix milliseconds, then 74 random bits) in canonical text form,
 * as the sidecar makes its own. The random bits come from a SecureRandom read 4 KiB at a time, where
 * {@code UUID.randomUUID()} locked and read the system's source for every id.
 */
final class MessageIds {
  private static final SecureRandom RANDOM = new SecureRandom();
  private static final byte[] POOL = new byte[4096];
  private static int used = POOL.length;
  private static final char[] HEX = "0123456789abcdef".toCharArray();

  private MessageIds() {}

  /** A new id. */
  static String next() {
    byte[] u = new byte[16];
    synchronized (POOL) {
      if (used + 10 > POOL.length) {
        RANDOM.nextBytes(POOL);
        used = 0;
      }
      System.arraycopy(POOL, used, u, 6, 10);
      used += 10;
    }
    long ms = System.currentTimeMillis();
    for (int i = 0; i < 6; i++) {
      u[i] = (byte) (ms >>> (40 - 8 * i));
    }
    u[6] = (byte) ((u[6] & 0x0F) | 0x70); // version 7
    u[8] = (byte) ((u[8] & 0x3F) | 0x80); // RFC 9562 variant
    char[] out = new char[36];
    int at = 0;
    for (int i = 0; i < 16; i++) {
      if (i == 4 || i == 6 || i == 8 || i == 10) {
        out[at++] = '-';
      }
      out[at++] = HEX[(u[i] >> 4) & 0xF];
      out[at++] = HEX[u[i] & 0xF];
    }
    return new String(out);
  }
}
