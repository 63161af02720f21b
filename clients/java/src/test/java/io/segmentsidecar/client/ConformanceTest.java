package io.segmentsidecar.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.grpc.Status;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Runs clients/conformance/scenario.json through SidecarClient against a real sidecar and two collectors started by
 * clients/conformance/harness.py, then asks the harness whether what arrived equals the scenario's expected events.
 * Skips, saying why, when the harness cannot start, unless TEST_REQUIRE_CONFORMANCE=1.
 */
class ConformanceTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private Process harness;
  private Path stderrLog;

  @AfterEach
  void stopHarness() throws Exception {
    if (harness != null) {
      harness.getOutputStream().close(); // EOF on stdin: the harness stops everything it started
      if (!harness.waitFor(15, TimeUnit.SECONDS)) {
        harness.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    }
    if (stderrLog != null) {
      Files.deleteIfExists(stderrLog);
    }
  }

  /** Skips with the reason, or fails when TEST_REQUIRE_CONFORMANCE=1. */
  private static void unavailable(String reason) {
    if ("1".equals(System.getenv("TEST_REQUIRE_CONFORMANCE"))) {
      fail("conformance required but: " + reason);
    }
    System.err.println("conformance skipped: " + reason);
    Assumptions.abort("conformance skipped: " + reason + " (set TEST_REQUIRE_CONFORMANCE=1 to fail instead)");
  }

  /** The interpreter the contract names: SIDECAR_PYTHON, else the repository's .venv, else python3. */
  private static String python(Path root) {
    String env = System.getenv("SIDECAR_PYTHON");
    if (env != null && !env.isBlank()) {
      return env;
    }
    Path venv = root.resolve(".venv/bin/python");
    return Files.exists(venv) ? venv.toString() : "python3";
  }

  /** Starts the harness ({@code up} plus {@code args}) and returns its JSON line, or skips. */
  JsonNode startHarness(String... args) throws Exception {
    Path root = Path.of("").toAbsolutePath().resolve("../..").normalize();
    Path script = root.resolve("clients/conformance/harness.py");
    if (!Files.exists(script)) {
      unavailable(script + " does not exist");
    }
    String py = python(root);
    stderrLog = Files.createTempFile("conformance-harness", ".log");
    try {
      List<String> command = new ArrayList<>(List.of(py, script.toString(), "up"));
      command.addAll(List.of(args));
      harness = new ProcessBuilder(command).directory(root.toFile())
          .redirectError(stderrLog.toFile()).start();
    } catch (IOException e) {
      unavailable("cannot start " + py + ": " + e.getMessage());
    }
    BufferedReader out = new BufferedReader(new InputStreamReader(harness.getInputStream(), StandardCharsets.UTF_8));
    CompletableFuture<String> line = CompletableFuture.supplyAsync(() -> {
      try {
        return out.readLine();
      } catch (IOException e) {
        return null;
      }
    });
    String text = null;
    try {
      text = line.get(60, TimeUnit.SECONDS);
    } catch (TimeoutException e) {
      unavailable("the harness printed nothing within 60 s; stderr:\n" + tail());
    }
    if (text == null || !text.startsWith("{")) {
      harness.waitFor(10, TimeUnit.SECONDS);
      unavailable("the harness did not start (line " + text + "); stderr:\n" + tail());
    }
    return JSON.readTree(text);
  }

  private String tail() throws IOException {
    List<String> lines = Files.readAllLines(stderrLog);
    return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
  }

  /** Every step of the scenario behaves as expected, and the collectors receive exactly the expected events. */
  @Test
  void scenario() throws Exception {
    JsonNode info = startHarness();
    JsonNode scenario = JSON.readTree(new File(info.get("scenario").asText()));
    SidecarOptions options = SidecarOptions.builder().address(info.get("sidecar_address").asText())
        .timeout(Duration.ofSeconds(30)).build();
    try (SidecarClient client = SidecarClient.create(options)) {
      int n = 0;
      for (JsonNode step : scenario.get("steps")) {
        n++;
        String name = "step " + n + " (" + step.get("call").asText() + " " + step.path("request").path("message_id")
            .asText() + ")";
        if (step.get("call").asText().equals("batch")) {
          runBatch(client, name, step);
          continue;
        }
        RuntimeException error = null;
        try {
          callUnary(client, event(step.get("call").asText(), step.get("request")));
        } catch (RuntimeException e) {
          error = e;
        }
        check(name, step.get("expect"), error);
      }
      client.flush();
    }
    HttpResponse<String> resp = HttpClient.newHttpClient().send(
        HttpRequest.newBuilder(URI.create(info.get("check_url").asText())).timeout(Duration.ofSeconds(30))
            .POST(HttpRequest.BodyPublishers.noBody()).build(),
        HttpResponse.BodyHandlers.ofString());
    assertEquals(200, resp.statusCode(), resp.body());
    JsonNode verdict = JSON.readTree(resp.body());
    assertTrue(verdict.path("ok").asBoolean(),
        "the collectors did not receive the expected events:\n" + verdict.path("diff").asText());
  }

  private static void runBatch(SidecarClient client, String name, JsonNode step) {
    List<Event> events = new ArrayList<>();
    for (JsonNode e : step.get("events")) {
      events.add(event(e.get("call").asText(), e.get("request")));
    }
    List<BatchResult> results = client.batch(events);
    JsonNode expected = step.get("expect").get("results");
    assertEquals(expected.size(), results.size(), name);
    for (int i = 0; i < results.size(); i++) {
      check(name + " event " + i, expected.get(i), results.get(i).rejection());
      if (expected.get(i).get("ok").asBoolean()) {
        assertEquals(step.get("events").get(i).get("request").get("message_id").asText(),
            results.get(i).messageId(), name + " event " + i);
      }
    }
  }

  /** Compares a call's outcome with a step's expect. */
  private static void check(String name, JsonNode expect, RuntimeException error) {
    if (expect.get("ok").asBoolean()) {
      assertNull(error, () -> name + ": " + error);
      return;
    }
    if (!(error instanceof InvalidEventException invalid)) {
      fail(name + ": want " + expect + ", got " + error);
      return;
    }
    assertEquals(Status.Code.valueOf(expect.get("code").asText()), invalid.code(), name);
    if (expect.has("field")) {
      assertTrue(!invalid.violations().isEmpty(), name + ": no field violations");
      assertEquals(expect.get("field").asText(), invalid.violations().get(0).field(), name);
    }
  }

  private static void callUnary(SidecarClient client, Event e) {
    if (e instanceof Track t) {
      client.track(t);
    } else if (e instanceof Identify i) {
      client.identify(i);
    } else if (e instanceof Page p) {
      client.page(p);
    } else if (e instanceof Screen s) {
      client.screen(s);
    } else if (e instanceof Group g) {
      client.group(g);
    } else if (e instanceof Alias a) {
      client.alias(a);
    }
  }

  /** Builds the wrapper's event from a scenario request (proto field names). */
  static Event event(String call, JsonNode r) {
    Event.Builder<?, ?> b = switch (call) {
      case "track" -> Track.builder().event(text(r, "event")).properties(object(r, "properties"));
      case "identify" -> Identify.builder().traits(object(r, "traits"));
      case "page" -> Page.builder().name(text(r, "name")).category(text(r, "category"))
          .properties(object(r, "properties"));
      case "screen" -> Screen.builder().name(text(r, "name")).properties(object(r, "properties"));
      case "group" -> Group.builder().groupId(text(r, "group_id")).traits(object(r, "traits"));
      case "alias" -> Alias.builder().previousId(text(r, "previous_id"));
      default -> throw new IllegalArgumentException("unknown call " + call);
    };
    b.writeKey(text(r, "write_key")).userId(text(r, "user_id")).anonymousId(text(r, "anonymous_id"))
        .messageId(text(r, "message_id")).context(object(r, "context")).integrations(object(r, "integrations"));
    String region = text(r, "region");
    b.region(region == null ? Region.UNSPECIFIED : Region.valueOf(region));
    String ts = text(r, "timestamp");
    if (ts != null) {
      b.timestamp(Instant.parse(ts));
    }
    return b.build();
  }

  private static String text(JsonNode r, String key) {
    return r.hasNonNull(key) ? r.get(key).asText() : null;
  }

  /** A JSON object as a Map (the JSON-bytes path) or a Struct, per "<key>_as"; null when absent. */
  @SuppressWarnings("unchecked")
  private static Object object(JsonNode r, String key) {
    if (!r.has(key)) {
      return null;
    }
    Map<String, Object> map = JSON.convertValue(r.get(key), Map.class);
    String as = r.path(key + "_as").asText("json");
    return switch (as) {
      case "json" -> map;
      case "struct" -> Structs.fromMap(map);
      default -> throw new IllegalArgumentException(key + "_as = " + as);
    };
  }
}
