package io.segmentsidecar.client;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.security.SecureRandom;
import java.util.UUID;

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
  /** Random bytes per id: 74 bits of their 80 are kept (12 after the version, 62 after the variant). */
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
    long random12;
    long random64;
    synchronized (POOL) {
      if (used + RANDOM_BYTES > POOL.length) {
        refill();
        used = 0;
      }
      random12 = (POOL[used] & 0x0FL) << 8 | (POOL[used + 1] & 0xFFL);
      random64 = 0;
      for (int i = used + 2; i < used + RANDOM_BYTES; i++) {
        random64 = random64 << 8 | (POOL[i] & 0xFFL);
      }
      used += RANDOM_BYTES;
    }
    long mostSignificant = System.currentTimeMillis() << 16 | 0x7000L | random12; // version 7
    long leastSignificant = random64 & 0x3FFF_FFFF_FFFF_FFFFL | 0x8000_0000_0000_0000L; // RFC 9562 variant
    // The JDK writes a UUID's text straight into the String's own bytes.
    return new UUID(mostSignificant, leastSignificant).toString();
  }
}
