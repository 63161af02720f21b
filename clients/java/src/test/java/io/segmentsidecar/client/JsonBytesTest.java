package io.segmentsidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The hand-written JSON of plain maps is exactly Jackson's, and everything else still goes to Jackson. */
class JsonBytesTest {
  private static final ObjectMapper JACKSON = new ObjectMapper();

  private static void assertSameAsJackson(Map<String, ?> map) throws Exception {
    String want = new String(JACKSON.writeValueAsBytes(map), StandardCharsets.UTF_8);
    String got = new String(JsonBytes.of("properties", map), StandardCharsets.UTF_8);
    assertEquals(want, got);
  }

  /** Every kind of plain value, every ASCII character, non-ASCII text and surrogate pairs. */
  @Test
  void plainMapsAreWrittenAsJacksonWritesThem() throws Exception {
    StringBuilder ascii = new StringBuilder();
    for (char c = 0; c < 0x80; c++) {
      ascii.append(c);
    }
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("ascii", ascii.toString());
    m.put("text", "café ☕ 😀 ü\u2028\u07ff\u0800\uffff");
    m.put("<key \"q\">", null);
    m.put("numbers", Arrays.asList(0, -1, Integer.MIN_VALUE, Long.MAX_VALUE, (short) 7, (byte) -8, 0.0, -0.0, 1.5,
        1e-7, 1e21, 123456789.125, Double.MIN_VALUE, Double.MAX_VALUE, 0.1f, 1e-7f, 3.4e38f, 2e-3, 100.0));
    m.put("bools", List.of(true, false));
    m.put("nested", Map.of("list", List.of(List.of(), Map.of(), "x")));
    m.put("empty", new HashMap<>());
    assertSameAsJackson(m);
    assertSameAsJackson(Map.of());
  }

  /** Random maps of the kinds of values the writer handles. */
  @Test
  void randomPlainMapsAreWrittenAsJacksonWritesThem() throws Exception {
    Random random = new Random(42);
    for (int i = 0; i < 500; i++) {
      assertSameAsJackson(randomMap(random, 0));
    }
  }

  /**
   * One writer reused for many maps (as each WireBatch reuses one): each map's bytes are Jackson's, whatever the
   * writer held before, a longer map or one it gave up on half-way.
   */
  @Test
  void aReusedWriterWritesEachMapAsJacksonDoes() throws Exception {
    JsonBytes writer = JsonBytes.reusable();
    Random random = new Random(7);
    for (int i = 0; i < 300; i++) {
      Map<String, Object> map = randomMap(random, 0);
      assertTrue(writer.writePlainMap(map));
      assertEquals(new String(JACKSON.writeValueAsBytes(map), StandardCharsets.UTF_8),
          new String(writer.buffer(), 0, writer.length(), StandardCharsets.UTF_8));
      if (i % 10 == 0) {
        assertFalse(writer.writePlainMap(Map.of("ok", "x".repeat(i), "d", new BigDecimal("1.5"))));
      }
    }
  }

  /** A POJO, a BigDecimal, NaN or a non-string key: Jackson decides, as before. */
  @Test
  void anythingElseGoesToJackson() throws Exception {
    record Point(int x, int y) {}
    for (Map<?, ?> m : List.of(Map.of("p", new Point(1, 2)), Map.of("d", new BigDecimal("1.50")),
        Map.of("n", Double.NaN), Map.of("i", Float.POSITIVE_INFINITY), Map.of(1, "integer key"))) {
      assertEquals(new String(JACKSON.writeValueAsBytes(m), StandardCharsets.UTF_8),
          new String(JsonBytes.of("properties", m), StandardCharsets.UTF_8));
    }
    assertSameAsJackson(Map.of("lone surrogates", "a\ud800b\udc00c\ud800"));
    assertThrows(IllegalArgumentException.class, () -> JsonBytes.of("properties", List.of(1)));
    Map<String, Object> cycle = new HashMap<>();
    cycle.put("self", cycle);
    assertThrows(IllegalArgumentException.class, () -> JsonBytes.of("properties", cycle));
  }

  private static Map<String, Object> randomMap(Random r, int depth) {
    Map<String, Object> m = new LinkedHashMap<>();
    for (int i = r.nextInt(10); i > 0; i--) {
      m.put(randomString(r), randomValue(r, depth));
    }
    return m;
  }

  private static Object randomValue(Random r, int depth) {
    switch (r.nextInt(9)) {
      case 0: return randomString(r);
      case 1: return r.nextBoolean();
      case 2: return null;
      case 3: return r.nextLong() >> r.nextInt(64);
      case 4: {
        double d = Double.longBitsToDouble(r.nextLong());
        return Double.isNaN(d) || Double.isInfinite(d) ? 0.5 : d;
      }
      case 5: return r.nextInt(100_000) / 1000.0;
      case 6: return (float) (r.nextGaussian() * Math.pow(10, r.nextInt(60) - 30));
      case 7: return depth < 3 ? randomMap(r, depth + 1) : "leaf";
      default: {
        List<Object> list = new ArrayList<>();
        for (int i = r.nextInt(4); i > 0; i--) {
          list.add(randomValue(r, depth + 1));
        }
        return list;
      }
    }
  }

  private static String randomString(Random r) {
    String alphabet = "abcXYZ_09 -<>&\"\\/é€\u2028\t\u0000\u007f😀";
    int[] points = alphabet.codePoints().toArray();
    StringBuilder b = new StringBuilder();
    for (int i = r.nextInt(10); i > 0; i--) {
      b.appendCodePoint(points[r.nextInt(points.length)]);
    }
    return b.toString();
  }
}
