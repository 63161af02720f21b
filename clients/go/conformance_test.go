package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// harnessInfo is the one JSON line clients/conformance/harness.py prints once its sidecar answers.
type harnessInfo struct {
	SidecarAddress string `json:"sidecar_address"`
	CheckURL       string `json:"check_url"`
	Scenario       string `json:"scenario"`
	// RestartURL is set with `up --outcomes`: a POST SIGKILLs the sidecar and starts it again.
	RestartURL string `json:"restart_url"`
}

// scenarioFile is clients/conformance/scenario.json; "expected" is the harness's business.
type scenarioFile struct {
	Steps []scenarioStep `json:"steps"`
}

type scenarioStep struct {
	Call    string          `json:"call"`
	Request map[string]any  `json:"request"`
	Events  []scenarioStep  `json:"events"`
	Expect  scenarioOutcome `json:"expect"`
}

type scenarioOutcome struct {
	OK      bool              `json:"ok"`
	Code    string            `json:"code"`
	Field   string            `json:"field"`
	Results []scenarioOutcome `json:"results"`
}

// skipOrFail skips the conformance test with the reason, or fails it when TEST_REQUIRE_CONFORMANCE=1.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("TEST_REQUIRE_CONFORMANCE") == "1" {
		t.Fatalf("conformance required but: %s", reason)
	}
	t.Skipf("conformance skipped: %s (set TEST_REQUIRE_CONFORMANCE=1 to fail instead)", reason)
}

// harnessPython picks the interpreter the conformance contract names.
func harnessPython(root string) string {
	if p := os.Getenv("SIDECAR_PYTHON"); p != "" {
		return p
	}
	if venv := filepath.Join(root, ".venv", "bin", "python"); fileExists(venv) {
		return venv
	}
	return "python3"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// startHarness runs `<python> clients/conformance/harness.py up [args]` and returns its line; the harness stops
// when the test ends (its stdin is closed).
func startHarness(t *testing.T, args ...string) harnessInfo {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "clients", "conformance", "harness.py")
	if !fileExists(script) {
		skipOrFail(t, "%s does not exist", script)
	}
	python := harnessPython(root)
	if _, err := exec.LookPath(python); err != nil {
		skipOrFail(t, "no python interpreter %q: %v", python, err)
	}
	cmd := exec.Command(python, append([]string{script, "up"}, args...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		skipOrFail(t, "cannot start %s: %v", python, err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(60 * time.Second):
		skipOrFail(t, "the harness printed nothing within 60 s; stderr:\n%s", tail(stderr.String()))
	}
	var info harnessInfo
	if err := json.Unmarshal([]byte(line), &info); err != nil || info.SidecarAddress == "" {
		<-exited // the harness has closed stdout: it is exiting; stderr is complete once it has
		skipOrFail(t, "the harness did not start (line %q); stderr:\n%s", line, tail(stderr.String()))
	}
	return info
}

// tail returns the last lines of a process's stderr, enough to see why it failed.
func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// TestConformanceScenario runs clients/conformance/scenario.json through the Client against a real sidecar and
// collectors, and asks the harness whether what arrived equals the scenario's expected events.
func TestConformanceScenario(t *testing.T) {
	info := startHarness(t)
	raw, err := os.ReadFile(info.Scenario)
	if err != nil {
		t.Fatal(err)
	}
	var sc scenarioFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep integers such as 9007199254740991 exact on the JSON path
	if err := dec.Decode(&sc); err != nil {
		t.Fatalf("scenario: %v", err)
	}
	c, err := New(WithAddress(info.SidecarAddress))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for i, step := range sc.Steps {
		name := fmt.Sprintf("step %d (%s %v)", i+1, step.Call, step.Request["message_id"])
		if step.Call == "batch" {
			runBatchStep(ctx, t, c, name, step)
			continue
		}
		ev, err := scenarioEvent(step.Call, step.Request)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = callUnary(ctx, c, ev)
		checkOutcome(t, name, step.Expect, err)
	}
	if _, err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	resp, err := http.Post(info.CheckURL, "application/json", nil)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	defer resp.Body.Close()
	var verdict struct {
		OK   bool   `json:"ok"`
		Diff string `json:"diff"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &verdict); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("check answered %d: %s", resp.StatusCode, body)
	}
	if !verdict.OK {
		t.Fatalf("the collectors did not receive the expected events:\n%s", verdict.Diff)
	}
}

// runBatchStep sends a batch step's events in one Batch call and checks each result.
func runBatchStep(ctx context.Context, t *testing.T, c *Client, name string, step scenarioStep) {
	t.Helper()
	events := make([]Event, len(step.Events))
	for i, e := range step.Events {
		ev, err := scenarioEvent(e.Call, e.Request)
		if err != nil {
			t.Fatalf("%s event %d: %v", name, i, err)
		}
		events[i] = ev
	}
	results, err := c.Batch(ctx, events...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(results) != len(step.Expect.Results) {
		t.Fatalf("%s: %d results, want %d", name, len(results), len(step.Expect.Results))
	}
	for i, want := range step.Expect.Results {
		label := fmt.Sprintf("%s event %d", name, i)
		checkOutcome(t, label, want, results[i].Err)
		if wantID := step.Events[i].Request["message_id"]; want.OK && results[i].MessageID != wantID {
			t.Errorf("%s: message id %q, want %q", label, results[i].MessageID, wantID)
		}
	}
}

// checkOutcome compares a call's error with a step's expect.
func checkOutcome(t *testing.T, name string, want scenarioOutcome, err error) {
	t.Helper()
	if want.OK {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		return
	}
	if err == nil {
		t.Errorf("%s: accepted, want %s on %s", name, want.Code, want.Field)
		return
	}
	if got := codeName(status.Code(err)); got != want.Code {
		t.Errorf("%s: code %s, want %s (%v)", name, got, want.Code, err)
	}
	var invalid *InvalidEventError
	if !errors.As(err, &invalid) {
		t.Errorf("%s: %T is not an *InvalidEventError", name, err)
		return
	}
	if want.Field != "" && (len(invalid.Violations) == 0 || invalid.Violations[0].Field != want.Field) {
		t.Errorf("%s: violations %+v, want the first on %q", name, invalid.Violations, want.Field)
	}
}

// codeName spells a code the way gRPC's status names do (INVALID_ARGUMENT).
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// callUnary sends one event through the matching unary method of the Client.
func callUnary(ctx context.Context, c *Client, ev Event) error {
	var err error
	switch e := ev.(type) {
	case Track:
		_, err = c.Track(ctx, e)
	case Identify:
		_, err = c.Identify(ctx, e)
	case Page:
		_, err = c.Page(ctx, e)
	case Screen:
		_, err = c.Screen(ctx, e)
	case Group:
		_, err = c.Group(ctx, e)
	case Alias:
		_, err = c.Alias(ctx, e)
	default:
		err = fmt.Errorf("unknown event %T", ev)
	}
	return err
}

// scenarioEvent builds the wrapper's typed event from a scenario request.
func scenarioEvent(call string, r map[string]any) (Event, error) {
	str := func(k string) string { s, _ := r[k].(string); return s }
	region, err := scenarioRegion(str("region"))
	if err != nil {
		return nil, err
	}
	var ts time.Time
	if s := str("timestamp"); s != "" {
		if ts, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, err
		}
	}
	obj := func(k string) (any, error) { return scenarioObject(r, k) }
	ctxValue, err := obj("context")
	if err != nil {
		return nil, err
	}
	integrations, err := obj("integrations")
	if err != nil {
		return nil, err
	}
	props, err := obj("properties")
	if err != nil {
		return nil, err
	}
	traits, err := obj("traits")
	if err != nil {
		return nil, err
	}
	wk, uid, aid, mid := str("write_key"), str("user_id"), str("anonymous_id"), str("message_id")
	switch call {
	case "track":
		return Track{WriteKey: wk, Region: region, UserID: uid, AnonymousID: aid, MessageID: mid, Timestamp: ts,
			Event: str("event"), Properties: props, Context: ctxValue, Integrations: integrations}, nil
	case "identify":
		return Identify{WriteKey: wk, Region: region, UserID: uid, AnonymousID: aid, MessageID: mid, Timestamp: ts,
			Traits: traits, Context: ctxValue, Integrations: integrations}, nil
	case "page":
		return Page{WriteKey: wk, Region: region, UserID: uid, AnonymousID: aid, MessageID: mid, Timestamp: ts,
			Name: str("name"), Category: str("category"), Properties: props, Context: ctxValue,
			Integrations: integrations}, nil
	case "screen":
		return Screen{WriteKey: wk, Region: region, UserID: uid, AnonymousID: aid, MessageID: mid, Timestamp: ts,
			Name: str("name"), Properties: props, Context: ctxValue, Integrations: integrations}, nil
	case "group":
		return Group{WriteKey: wk, Region: region, UserID: uid, AnonymousID: aid, MessageID: mid, Timestamp: ts,
			GroupID: str("group_id"), Traits: traits, Context: ctxValue, Integrations: integrations}, nil
	case "alias":
		return Alias{WriteKey: wk, Region: region, UserID: uid, AnonymousID: aid, MessageID: mid, Timestamp: ts,
			PreviousID: str("previous_id"), Context: ctxValue, Integrations: integrations}, nil
	}
	return nil, fmt.Errorf("unknown call %q", call)
}

func scenarioRegion(s string) (Region, error) {
	switch s {
	case "", "UNSPECIFIED":
		return RegionUnspecified, nil
	case "US":
		return RegionUS, nil
	case "EU":
		return RegionEU, nil
	}
	return 0, fmt.Errorf("unknown region %q", s)
}

// scenarioObject returns a request's JSON object as a map (the JSON-bytes path) or a *structpb.Struct, per
// "<key>_as"; nil when absent.
func scenarioObject(r map[string]any, key string) (any, error) {
	v, ok := r[key]
	if !ok {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not an object", key)
	}
	switch as, _ := r[key+"_as"].(string); as {
	case "", "json":
		return m, nil
	case "struct":
		return structpb.NewStruct(numbersAsFloats(m).(map[string]any))
	default:
		return nil, fmt.Errorf("%s_as = %q", key, as)
	}
}

// numbersAsFloats replaces json.Number (from UseNumber) with float64, the only number a Struct holds.
func numbersAsFloats(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = numbersAsFloats(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = numbersAsFloats(e)
		}
		return out
	}
	return v
}
