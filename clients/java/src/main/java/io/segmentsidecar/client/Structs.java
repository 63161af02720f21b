package io.segmentsidecar.client;

import com.google.protobuf.ListValue;
import com.google.protobuf.NullValue;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import java.util.Map;

/**
 * Builds a {@link Struct} from plain Java maps, for callers who want the Struct path rather than JSON bytes. Numbers
 * become doubles (a Struct holds no integers; the sidecar turns whole numbers back into integers).
 */
public final class Structs {
  private Structs() {}

  /** Converts a map of strings, numbers, booleans, nulls, maps and iterables into a Struct. */
  public static Struct fromMap(Map<String, ?> map) {
    Struct.Builder b = Struct.newBuilder();
    map.forEach((k, v) -> b.putFields(k, toValue(v)));
    return b.build();
  }

  /** Converts one JSON-like Java value into a protobuf Value. */
  public static Value toValue(Object v) {
    if (v == null) {
      return Value.newBuilder().setNullValue(NullValue.NULL_VALUE).build();
    }
    if (v instanceof String s) {
      return Value.newBuilder().setStringValue(s).build();
    }
    if (v instanceof Boolean bool) {
      return Value.newBuilder().setBoolValue(bool).build();
    }
    if (v instanceof Number n) {
      return Value.newBuilder().setNumberValue(n.doubleValue()).build();
    }
    if (v instanceof Map<?, ?> m) {
      Struct.Builder s = Struct.newBuilder();
      m.forEach((k, e) -> s.putFields(String.valueOf(k), toValue(e)));
      return Value.newBuilder().setStructValue(s).build();
    }
    if (v instanceof Iterable<?> it) {
      ListValue.Builder l = ListValue.newBuilder();
      it.forEach(e -> l.addValues(toValue(e)));
      return Value.newBuilder().setListValue(l).build();
    }
    if (v instanceof Object[] arr) {
      ListValue.Builder l = ListValue.newBuilder();
      for (Object e : arr) {
        l.addValues(toValue(e));
      }
      return Value.newBuilder().setListValue(l).build();
    }
    throw new IllegalArgumentException("cannot put a " + v.getClass().getName() + " in a Struct");
  }
}
