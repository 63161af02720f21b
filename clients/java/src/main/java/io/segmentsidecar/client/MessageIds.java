package io.segmentsidecar.client;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.security.SecureRandom;

/**
 * Message ids: version 7 UUIDs (RFC 9562: 48 bits of Unix milliseconds, then 74 random bits) in canonical text form,
 * as the sidecar makes its own. The random bits come from the system's random source read 4 KiB at a time, where
 * {@code UUID.randomUUID()} locked and read it for every id.
 *
 * <p>The source is /dev/urandom itself where it exists (Linux, macOS), as Go's crypto/rand and Python's os.urandom
 * read it. Not through {@code new SecureRandom()}: its default on these systems (NativePRNG) XORs every byte it reads
 * from /dev/urandom with the output of a SHA1PRNG computed in Java, which made SHA-1 the largest method the JIT
 * compiled for a batch of events (a third of the C2 compiler's time at 100,000 events) and a few percent of the
 * caller's own time, for bits that were already random. Elsewhere a SecureRandom serves.
 */
final class MessageIds {
  private static final byte[] POOL = new byte[4096];
  private static int used = POOL.length;
  private static final char[] HEX = "0123456789abcdef".toCharArray();
  /** How many of an id's 16 bytes are random: the last 10 (the first 6 are the time). */
  private static final int RANDOM_BYTES = 10;

  /** The system's source, or null where there is no /dev/urandom to read. Guarded by POOL. */
  private static InputStream urandom = openUrandom();
  /** Made on first use, only where /dev/urandom cannot be read. Guarded by POOL. */
  private static SecureRandom fallback;

  private MessageIds() {}

  private static InputStream openUrandom() {
    try {
      return new FileInputStream("/dev/urandom");
    } catch (IOException | SecurityException ex) {
      return null;
    }
  }

  /** Fills the pool from /dev/urandom, or from a SecureRandom when it cannot be read. Called holding POOL. */
  private static void refill() {
    if (urandom != null) {
      try {
        if (urandom.readNBytes(POOL, 0, POOL.length) == POOL.length) {
          return;
        }
      } catch (IOException ex) {
        // fall through to the SecureRandom, for good
      }
      urandom = null;
    }
    if (fallback == null) {
      fallback = new SecureRandom();
    }
    fallback.nextBytes(POOL);
  }

  /** A new id. */
  static String next() {
    byte[] u = new byte[16];
    synchronized (POOL) {
      if (used + RANDOM_BYTES > POOL.length) {
        refill();
        used = 0;
      }
      System.arraycopy(POOL, used, u, 16 - RANDOM_BYTES, RANDOM_BYTES);
      used += RANDOM_BYTES;
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
