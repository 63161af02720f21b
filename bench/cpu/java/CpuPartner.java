import com.sun.management.OperatingSystemMXBean;
import io.segmentsidecar.client.Batcher;
import io.segmentsidecar.client.BatcherOptions;
import io.segmentsidecar.client.SidecarClient;
import io.segmentsidecar.client.Track;
import java.lang.management.ManagementFactory;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The CPU benchmark's Java partner (bench/cpu_per_event.py): BENCH_EVENTS track events through the Java client's
 * Batcher to the sidecar at SIDECAR_ADDRESS, then close (which flushes); prints the process's CPU time used.
 */
public final class CpuPartner {
  private CpuPartner() {}

  /**
   * "user-" and the event's number modulo 100,000 in six digits, as the other partners make it. Not String.format:
   * its Formatter and DecimalFormatSymbols per call cost more than the client's whole work for an event, which would
   * measure the JDK's formatter rather than the client (bench/README.md has the figures with it).
   */
  static String userId(int i) {
    String digits = Integer.toString(i % 100000);
    return "user-" + "000000".substring(digits.length()) + digits;
  }

  public static void main(String[] args) {
    int events = Integer.parseInt(System.getenv("BENCH_EVENTS"));
    String writeKey = System.getenv("BENCH_WRITE_KEY");
    OperatingSystemMXBean os = (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    try (SidecarClient client = SidecarClient.create()) {
      long started = os.getProcessCpuTime();
      try (Batcher batcher = client.newBatcher(BatcherOptions.DEFAULT.withMaxEvents(1000))) {
        for (int i = 0; i < events; i++) {
          Map<String, Object> properties = new LinkedHashMap<>();
          properties.put("campaign_id", "cmp_2026_11_spring");
          properties.put("email_id", "em_000000123456");
          properties.put("email_subject", "Spring sale");
          properties.put("list_id", "lst_42");
          properties.put("link_count", 3);
          properties.put("opened_on", "mobile");
          properties.put("first_open", true);
          properties.put("send_hour", 9);
          properties.put("template", "promo-v2");
          properties.put("variant", "b");
          batcher.add(
              Track.builder()
                  .writeKey(writeKey)
                  .userId(userId(i))
                  .event("Email Opened")
                  .properties(properties)
                  .build());
        }
      }
      System.out.printf("cpu_seconds=%f%n", (os.getProcessCpuTime() - started) / 1e9);
    }
  }
}
