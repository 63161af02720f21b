import com.sun.management.OperatingSystemMXBean;
import io.segmentsidecar.client.Batcher;
import io.segmentsidecar.client.BatcherOptions;
import io.segmentsidecar.client.SidecarClient;
import io.segmentsidecar.client.Track;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The CPU benchmark's Java partner (bench/cpu_per_event.py): BENCH_EVENTS track events through the Java client's
 * Batcher to the sidecar at SIDECAR_ADDRESS, then close (which flushes); prints the process's CPU time used.
 *
 * <p>With BENCH_THREAD_CPU set it also prints, on stderr, each thread's CPU over the measured part, summed by kind
 * (main, JIT compilers, GC, netty, ...), from /proc/self/task: where a JVM's CPU goes is the question its figure raises.
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
    boolean threadCpu = System.getenv("BENCH_THREAD_CPU") != null;
    try (SidecarClient client = SidecarClient.create()) {
      ThreadCpuSampler sampler = threadCpu ? ThreadCpuSampler.started() : null;
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
      if (sampler != null) {
        sampler.stopAndPrint();
      }
    }
  }

  /**
   * Reads /proc/self/task every 250 ms and keeps each thread's last reading, so that a thread that ends before the
   * last reading (the Batcher's sender and timer end in close) still counts. Its own thread is reported as
   * "sampler".
   */
  static final class ThreadCpuSampler extends Thread {
    private final Map<String, Long> first = threadTicks();
    /** The JVM's uptime when sampling began, to match with a compilation log's time stamps. */
    private final long startedAtUptimeMillis = ManagementFactory.getRuntimeMXBean().getUptime();
    private final Map<String, Long> last = new TreeMap<>(first);
    private volatile boolean stopping;

    private ThreadCpuSampler() {
      super("cpu-sampler");
      setDaemon(true);
    }

    static ThreadCpuSampler started() {
      ThreadCpuSampler sampler = new ThreadCpuSampler();
      sampler.start();
      return sampler;
    }

    @Override
    public void run() {
      while (!stopping) {
        Map<String, Long> now = threadTicks();
        synchronized (last) {
          last.putAll(now);
        }
        try {
          Thread.sleep(250);
        } catch (InterruptedException ex) {
          return;
        }
      }
    }

    /** Prints each kind of thread's CPU since start, in seconds, on stderr. */
    void stopAndPrint() {
      stopping = true;
      Map<String, Long> byKind = new TreeMap<>();
      synchronized (last) {
        last.putAll(threadTicks());
        for (var entry : last.entrySet()) {
          long used = entry.getValue() - first.getOrDefault(entry.getKey(), 0L);
          String name = entry.getKey().substring(entry.getKey().indexOf(' ') + 1);
          byKind.merge(kind(name), used, Long::sum);
        }
      }
      List<String> parts = new ArrayList<>();
      byKind.forEach((kind, used) -> {
        if (used > 0) {
          parts.add(String.format("%s=%.2f", kind, used / (double) TICKS_PER_SECOND));
        }
      });
      System.err.printf(
          "thread_cpu_seconds %s (from uptime %.3f s)%n", String.join(" ", parts), startedAtUptimeMillis / 1e3);
    }
  }

  /** USER_HZ, the unit of /proc's CPU times: 100 on every Linux this runs on. */
  private static final int TICKS_PER_SECOND = 100;

  /** CPU clock ticks (user + system) of each live thread, by "tid name", from /proc/self/task. */
  static Map<String, Long> threadTicks() {
    Map<String, Long> ticks = new TreeMap<>();
    try (var tasks = Files.list(Path.of("/proc/self/task"))) {
      for (Path task : (Iterable<Path>) tasks::iterator) {
        try {
          String stat = Files.readString(task.resolve("stat"));
          String name = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
          String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
          // utime and stime are fields 14 and 15 of proc(5)'s stat, here 11 and 12 after the name.
          ticks.put(task.getFileName() + " " + name, Long.parseLong(fields[11]) + Long.parseLong(fields[12]));
        } catch (IOException | RuntimeException gone) {
          // the thread ended between the listing and the read
        }
      }
    } catch (IOException ex) {
      throw new IllegalStateException(ex);
    }
    return ticks;
  }

  /** A thread's kind from its name (Linux keeps 15 characters of it). */
  static String kind(String name) {
    if (name.startsWith("C1 CompilerThre")) return "C1";
    if (name.startsWith("C2 CompilerThre")) return "C2";
    if (name.startsWith("GC Thread") || name.startsWith("G1 ")) return "GC";
    if (name.startsWith("grpc-nio-worker") || name.startsWith("grpc-default-wo")) return "netty";
    if (name.startsWith("grpc-default-ex") || name.startsWith("grpc-shared")) return "grpc-executor";
    if (name.startsWith("segment-sidecar")) return "batcher"; // its sender and its timer
    if (name.equals("cpu-sampler")) return "sampler";
    if (name.equals("java")) return "main";
    return name;
  }
}
