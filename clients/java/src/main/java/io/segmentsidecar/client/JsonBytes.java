package io.segmentsidecar.client;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The JSON bytes of an object field. A map of plain values (strings, numbers, booleans, null, and maps and lists of
 * these) is written here, to exactly the bytes Jackson's default ObjectMapper writes for it; any other object, and
 * anything this writer does not handle (a POJO, a BigDecimal, NaN, a non-string key, deep nesting), goes to Jackson.
 * Jackson reaches each value through its serializer lookup, which made it most of an event's cost and most of the
 * code the JIT had to compile before the client ran fast. JsonBytesTest holds the two equal.
 */
final class JsonBytes {
  private static final byte[] HEX = "0123456789ABCDEF".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
  /** Deeper maps go to Jackson, so a map that contains itself fails as Jackson fails, not by stack overflow. */
  private static final int MAX_DEPTH = 32;

  private byte[] buf = new byte[256];
  private int pos;

  private JsonBytes() {}

  /** Jackson, loaded on first use only: its ObjectMapper is many classes that a map of plain values never needs. */
  private static final class Jackson {
    static final ObjectMapper MAPPER = new ObjectMapper();
  }

  /** A writer to reuse: {@link #writePlainMap} overwrites what the previous call wrote. */
  static JsonBytes reusable() {
    return new JsonBytes();
  }

  /**
   * Writes {@code map} in place of what this writer held, if it is a map of plain values; false (the content then
   * undefined) for anything {@link #of} must hand to Jackson. The bytes are {@link #buffer()} up to {@link #length()}.
   */
  boolean writePlainMap(Map<?, ?> map) {
    pos = 0;
    return map(map, 0);
  }

  /** The buffer the last {@link #writePlainMap} wrote into, valid up to {@link #length()}. */
  byte[] buffer() {
    return buf;
  }

  /** How many bytes of {@link #buffer()} the last {@link #writePlainMap} wrote. */
  int length() {
    return pos;
  }

  /** The JSON bytes of {@code value}, which must serialise to a JSON object. */
  static byte[] of(String field, Object value) {
    if (value instanceof Map<?, ?> map) {
      JsonBytes out = new JsonBytes();
      if (out.writePlainMap(map)) {
        return Arrays.copyOf(out.buf, out.pos);
      }
    }
    return ofAnyObject(field, value);
  }

  /** The JSON bytes of any object, by Jackson, which must serialise to a JSON object. */
  static byte[] ofAnyObject(String field, Object value) {
    byte[] bytes;
    try {
      bytes = Jackson.MAPPER.writeValueAsBytes(value);
    } catch (JsonProcessingException ex) {
      throw new IllegalArgumentException(field + " cannot be serialised to JSON: " + ex.getMessage(), ex);
    }
    if (bytes.length == 0 || bytes[0] != '{') {
      throw new IllegalArgumentException(field + " must serialise to a JSON object");
    }
    return bytes;
  }

  private void ensure(int extra) {
    if (pos + extra > buf.length) {
      buf = Arrays.copyOf(buf, Math.max(buf.length * 2, pos + extra));
    }
  }

  private void raw(char c) {
    ensure(1);
    buf[pos++] = (byte) c;
  }

  private void ascii(String s) {
    int n = s.length();
    ensure(n);
    for (int i = 0; i < n; i++) {
      buf[pos++] = (byte) s.charAt(i);
    }
  }

  private boolean map(Map<?, ?> map, int depth) {
    if (depth >= MAX_DEPTH) {
      return false;
    }
    raw('{');
    boolean first = true;
    for (Map.Entry<?, ?> entry : map.entrySet()) {
      if (!(entry.getKey() instanceof String key)) {
        return false;
      }
      if (!first) {
        raw(',');
      }
      first = false;
      if (!string(key)) {
        return false;
      }
      raw(':');
      if (!value(entry.getValue(), depth + 1)) {
        return false;
      }
    }
    raw('}');
    return true;
  }

  private boolean value(Object v, int depth) {
    if (v == null) {
      ascii("null");
      return true;
    } else if (v instanceof String s) {
      return string(s);
    } else if (v instanceof Boolean b) {
      ascii(b ? "true" : "false");
      return true;
    } else if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte) {
      ascii(v.toString());
      return true;
    } else if (v instanceof Double d) {
      if (d.isNaN() || d.isInfinite()) {
        return false;
      }
      ascii(Double.toString(d));
      return true;
    } else if (v instanceof Float f) {
      if (f.isNaN() || f.isInfinite()) {
        return false;
      }
      ascii(Float.toString(f));
      return true;
    } else if (v instanceof Map<?, ?> m) {
      return map(m, depth);
    } else if (v instanceof List<?> list) {
      if (depth >= MAX_DEPTH) {
        return false;
      }
      raw('[');
      for (int i = 0; i < list.size(); i++) {
        if (i > 0) {
          raw(',');
        }
        if (!value(list.get(i), depth + 1)) {
          return false;
        }
      }
      raw(']');
      return true;
    }
    return false;
  }

  /** A quoted string as Jackson writes it: UTF-8, with '"', '\\', control characters and surrogates escaped. */
  private boolean string(String s) {
    int n = s.length();
    ensure(n * 3 + 2);
    buf[pos++] = '"';
    for (int i = 0; i < n; i++) {
      char c = s.charAt(i);
      if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
        buf[pos++] = (byte) c;
      } else if (c < 0x80) {
        // An escape is 6 bytes where ensure() above counted 3: make room again for it and the rest.
        ensure(6 + 3 * (n - i));
        escape(c);
      } else if (c < 0x800) {
        buf[pos++] = (byte) (0xC0 | (c >> 6));
        buf[pos++] = (byte) (0x80 | (c & 0x3F));
      } else if (Character.isSurrogate(c)) {
        // Jackson writes each UTF-16 surrogate, paired or not, as a six-character escape (backslash, u, 4 hex digits).
        ensure(6 + 3 * (n - i));
        buf[pos++] = '\\';
        buf[pos++] = 'u';
        buf[pos++] = HEX[c >> 12];
        buf[pos++] = HEX[(c >> 8) & 0xF];
        buf[pos++] = HEX[(c >> 4) & 0xF];
        buf[pos++] = HEX[c & 0xF];
      } else {
        buf[pos++] = (byte) (0xE0 | (c >> 12));
        buf[pos++] = (byte) (0x80 | ((c >> 6) & 0x3F));
        buf[pos++] = (byte) (0x80 | (c & 0x3F));
      }
    }
    ensure(1);
    buf[pos++] = '"';
    return true;
  }

  private void escape(char c) {
    buf[pos++] = '\\';
    switch (c) {
      case '"', '\\' -> buf[pos++] = (byte) c;
      case '\b' -> buf[pos++] = 'b';
      case '\t' -> buf[pos++] = 't';
      case '\n' -> buf[pos++] = 'n';
      case '\f' -> buf[pos++] = 'f';
      case '\r' -> buf[pos++] = 'r';
      default -> {
        buf[pos++] = 'u';
        buf[pos++] = '0';
        buf[pos++] = '0';
        buf[pos++] = HEX[c >> 4];
        buf[pos++] = HEX[c & 0xF];
      }
    }
  }
}
