package io.segmentsidecar.client;

import com.google.protobuf.Struct;
import io.grpc.Drainable;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.segmentsidecar.v1.SidecarServiceGrpc;
import java.io.InputStream;
import java.io.OutputStream;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The events of one Batch call in wire form: each event is encoded once, when it is added, straight into the bytes
 * of the BatchRequest that carries it, and the call sends these bytes as they are ({@link #BATCH}); a retry re-sends
 * them.
 *
 * <p>A BatchRequest is only its repeated {@code events} field (number 1), and a repeated message field is its entries
 * end to end, so a batch grows by one entry per event: the entry's tag and length, the BatchEvent's oneof tag and
 * length, then the request message's fields in field-number order with defaults left out, as protobuf-java writes
 * them. The six request messages share fields 1-10 (sidecar.proto, "Common fields") and differ from field 16 on
 * ({@link #add}). WireBatchTest compares these bytes with protobuf-java's encoding of the same events, so a change of
 * the .proto that this class misses fails it.
 *
 * <p>Not thread-safe: the {@link Batcher} encodes into a per-thread scratch batch and appends it under its lock.
 */
final class WireBatch {
  /**
   * The Batch method with a request that is already bytes, and a response kept as bytes: it is parsed only when
   * someone reads its results ({@link Core#results}); a Batcher without an onReport never needs them.
   */
  static final MethodDescriptor<WireBatch, byte[]> BATCH =
      SidecarServiceGrpc.getBatchMethod().toBuilder(new Marshaller(), new ResponseBytes()).build();

  private static final int LENGTH_DELIMITED = 2;
  /** Room left before an event's fields for its two tags and two lengths (each length at most 5 bytes). */
  private static final int HEADER_ROOM = 12;

  private byte[] buf;
  private int pos;
  private final List<String> ids;
  /**
   * Writes each plain map's JSON; reused for every object field, so that an event's JSON costs no allocation (it
   * is copied from here into {@link #buf}, as the field's length must be written before it).
   */
  private final JsonBytes json = JsonBytes.reusable();

  WireBatch(int capacityBytes, int capacityEvents) {
    this(new byte[Math.max(capacityBytes, 64)], capacityEvents);
  }

  /** An empty batch that writes into {@code buffer} (a {@link #releaseBuffer} of a batch that was sent). */
  WireBatch(byte[] buffer, int capacityEvents) {
    this.buf = buffer;
    this.ids = new ArrayList<>(capacityEvents);
  }

  /**
   * Hands over this batch's buffer for a new batch to write into, once this one has been sent and will not be sent
   * again; this batch must not be used after.
   */
  byte[] releaseBuffer() {
    byte[] b = buf;
    buf = null;
    pos = 0;
    return b;
  }

  /** Events so far. */
  int count() {
    return ids.size();
  }

  /** Bytes so far. */
  int size() {
    return pos;
  }

  /** The events' message ids, in order (the live list). */
  List<String> ids() {
    return ids;
  }

  /** The BatchRequest's bytes (a copy). */
  byte[] toByteArray() {
    return Arrays.copyOf(buf, pos);
  }

  /** Empties the batch, keeping its buffer. */
  void clear() {
    pos = 0;
    ids.clear();
  }

  /** Appends the events of {@code other}. */
  void append(WireBatch other) {
    ensure(other.pos);
    System.arraycopy(other.buf, 0, buf, pos, other.pos);
    pos += other.pos;
    ids.addAll(other.ids);
  }

  /**
   * Appends an event, with its own message id or a new one, and returns that id. Throws
   * {@link IllegalArgumentException}, leaving the batch as it was, for an object field that cannot be sent.
   */
  String add(Event e) {
    String id = Requests.idFor(e);
    int entryStart = pos;
    try {
      ensure(HEADER_ROOM);
      pos += HEADER_ROOM;
      int fieldsStart = pos;
      string(1, e.writeKey());
      int region = e.region().toProto().getNumber();
      if (region != 0) {
        tag(2, 0);
        varint(region);
      }
      string(3, e.userId());
      string(4, e.anonymousId());
      string(5, id);
      if (e.timestamp() != null) {
        timestamp(6, e.timestamp());
      }
      object(7, 8, "context", e.context());
      object(9, 10, "integrations", e.integrations());
      int oneof;
      if (e instanceof Track t) {
        oneof = 1;
        string(16, t.event());
        object(17, 18, "properties", t.properties());
      } else if (e instanceof Identify i) {
        oneof = 2;
        object(16, 17, "traits", i.traits());
      } else if (e instanceof Page p) {
        oneof = 3;
        string(16, p.name());
        string(17, p.category());
        object(18, 19, "properties", p.properties());
      } else if (e instanceof Screen s) {
        oneof = 4;
        string(16, s.name());
        object(17, 18, "properties", s.properties());
      } else if (e instanceof Group g) {
        oneof = 5;
        string(16, g.groupId());
        object(17, 18, "traits", g.traits());
      } else if (e instanceof Alias a) {
        oneof = 6;
        string(16, a.previousId());
      } else {
        throw new IllegalArgumentException("unknown event " + e.getClass());
      }
      frame(entryStart, fieldsStart, oneof);
    } catch (RuntimeException ex) {
      pos = entryStart;
      throw ex;
    }
    ids.add(id);
    return id;
  }

  /** Writes the entry's tags and lengths just before its fields, and closes the gap left by HEADER_ROOM. */
  private void frame(int entryStart, int fieldsStart, int oneof) {
    int fieldsLength = pos - fieldsStart;
    int eventLength = 1 + varintSize(fieldsLength) + fieldsLength;
    int headerLength = 1 + varintSize(eventLength) + 1 + varintSize(fieldsLength);
    pos = entryStart;
    tag(1, LENGTH_DELIMITED);
    varint(eventLength);
    tag(oneof, LENGTH_DELIMITED);
    varint(fieldsLength);
    if (headerLength < HEADER_ROOM) {
      System.arraycopy(buf, fieldsStart, buf, pos, fieldsLength);
    }
    pos = entryStart + headerLength + fieldsLength;
  }

  private static int varintSize(long value) {
    int size = 1;
    while ((value & ~0x7FL) != 0) {
      value >>>= 7;
      size++;
    }
    return size;
  }

  private void ensure(int extra) {
    if (pos + extra > buf.length) {
      buf = Arrays.copyOf(buf, Math.max(buf.length * 2, pos + extra));
    }
  }

  /** A varint; a negative value takes ten bytes, as protobuf writes an int64 (and a negative int32). */
  private void varint(long value) {
    ensure(10);
    while ((value & ~0x7FL) != 0) {
      buf[pos++] = (byte) ((value & 0x7F) | 0x80);
      value >>>= 7;
    }
    buf[pos++] = (byte) value;
  }

  private void tag(int field, int wireType) {
    varint((long) field << 3 | wireType);
  }

  /** A string field; null and the empty string are the default and are left out. */
  private void string(int field, String value) {
    if (value == null || value.isEmpty()) {
      return;
    }
    int n = value.length();
    // Short ASCII text (ids, names) is copied char by char; the length then fits the one byte reserved for it.
    if (n < 128) {
      tag(field, LENGTH_DELIMITED);
      ensure(1 + n);
      int lengthAt = pos++;
      int i = 0;
      for (; i < n; i++) {
        char c = value.charAt(i);
        if (c >= 0x80) {
          break;
        }
        buf[pos + i] = (byte) c;
      }
      if (i == n) {
        buf[lengthAt] = (byte) n;
        pos += n;
        return;
      }
      pos = lengthAt - varintSize((long) field << 3 | LENGTH_DELIMITED);
    }
    byte[] utf8 = value.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    bytes(field, utf8, utf8.length);
  }

  /** A bytes field: the first {@code length} bytes of {@code value}. */
  private void bytes(int field, byte[] value, int length) {
    tag(field, LENGTH_DELIMITED);
    varint(length);
    ensure(length);
    System.arraycopy(value, 0, buf, pos, length);
    pos += length;
  }

  /** A google.protobuf.Timestamp field: seconds (int64, field 1) and nanos (int32, field 2), zeros left out. */
  private void timestamp(int field, Instant t) {
    long seconds = t.getEpochSecond();
    int nanos = t.getNano();
    int length = (seconds != 0 ? 1 + varintSize(seconds) : 0) + (nanos != 0 ? 1 + varintSize(nanos) : 0);
    tag(field, LENGTH_DELIMITED);
    varint(length);
    if (seconds != 0) {
      tag(1, 0);
      varint(seconds);
    }
    if (nanos != 0) {
      tag(2, 0);
      varint(nanos);
    }
  }

  /** An object field: a Struct as itself, anything else as the bytes of its JSON object. */
  private void object(int structField, int jsonField, String name, Object value) {
    if (value == null) {
      return;
    }
    if (value instanceof Struct s) {
      byte[] struct = s.toByteArray();
      bytes(structField, struct, struct.length);
      return;
    }
    if (value instanceof Map<?, ?> map && json.writePlainMap(map)) {
      bytes(jsonField, json.buffer(), json.length());
      return;
    }
    byte[] other = JsonBytes.ofAnyObject(name, value);
    bytes(jsonField, other, other.length);
  }

  /** Sends a WireBatch as its bytes; the sidecar's requests are never parsed on this side. */
  private static final class Marshaller implements MethodDescriptor.Marshaller<WireBatch> {
    @Override
    public InputStream stream(WireBatch batch) {
      return new BatchStream(batch.buf, batch.pos);
    }

    @Override
    public WireBatch parse(InputStream stream) {
      throw new UnsupportedOperationException("a client never parses a BatchRequest");
    }
  }

  /** Keeps a BatchResponse as its bytes. */
  private static final class ResponseBytes implements MethodDescriptor.Marshaller<byte[]> {
    @Override
    public InputStream stream(byte[] response) {
      return new BatchStream(response, response.length);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (java.io.IOException ex) {
        throw Status.INTERNAL.withDescription("reading a BatchResponse").withCause(ex).asRuntimeException();
      }
    }
  }

  /** The bytes of a batch, of a known length and drained in one write, so gRPC frames them without a copy. */
  private static final class BatchStream extends InputStream implements KnownLength, Drainable {
    private final byte[] buf;
    private final int end;
    private int at;

    BatchStream(byte[] buf, int end) {
      this.buf = buf;
      this.end = end;
    }

    @Override
    public int read() {
      return at < end ? buf[at++] & 0xFF : -1;
    }

    @Override
    public int read(byte[] b, int off, int len) {
      if (at >= end) {
        return -1;
      }
      int n = Math.min(len, end - at);
      System.arraycopy(buf, at, b, off, n);
      at += n;
      return n;
    }

    @Override
    public int available() {
      return end - at;
    }

    @Override
    public int drainTo(OutputStream target) throws java.io.IOException {
      int n = end - at;
      target.write(buf, at, n);
      at = end;
      return n;
    }
  }
}
