package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// fastRetry keeps the tests' own backoff short, so that what they measure is the server's RetryInfo.
var fastRetry = WithRetryPolicy(RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Multiplier: 2})

// TestNewMessageIDIsATimeOrderedUUIDv7 checks the generated ids' format, that their first 48 bits are the Unix
// milliseconds of their making, and that ids differ, also across a refill of the buffered random bytes.
func TestNewMessageIDIsATimeOrderedUUIDv7(t *testing.T) {
	before := time.Now().UnixMilli()
	seen := make(map[string]bool)
	for range 3 * len(idRandom.buf) / idRandomBytes {
		id := newMessageID()
		if !uuidV7.MatchString(id) {
			t.Fatalf("not UUIDv7: %q", id)
		}
		if seen[id] {
			t.Fatalf("message id %q made twice", id)
		}
		seen[id] = true
	}
	id := newMessageID()
	after := time.Now().UnixMilli()
	ms, err := strconv.ParseInt(strings.ReplaceAll(id[:13], "-", ""), 16, 64)
	if err != nil || ms < before || ms > after {
		t.Fatalf("id %q carries %d ms, want within [%d, %d]", id, ms, before, after)
	}
}

// TestTrackRetriesUnavailableAndExhaustedWithTheSameMessageID proves a retried call re-sends the id it generated.
func TestTrackRetriesUnavailableAndExhaustedWithTheSameMessageID(t *testing.T) {
	srv := &scriptedServer{trackScript: []error{unavailable(), exhausted(t, time.Millisecond)}}
	c := startTCP(t, srv, fastRetry)

	res, err := c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u1", Event: "Email Opened",
		Properties: map[string]any{"count": 3}})
	if err != nil {
		t.Fatal(err)
	}
	tracks, _, _ := srv.snapshot()
	if len(tracks) != 3 {
		t.Fatalf("attempts = %d, want 3", len(tracks))
	}
	if !uuidV7.MatchString(res.MessageID) {
		t.Fatalf("message id %q is not a UUIDv7", res.MessageID)
	}
	for i, r := range tracks {
		if r.GetMessageId() != res.MessageID {
			t.Errorf("attempt %d sent message id %q, want %q", i+1, r.GetMessageId(), res.MessageID)
		}
	}
	if len(res.Warnings) != 1 || res.Warnings[0].Code != "spec.test" {
		t.Errorf("warnings = %+v", res.Warnings)
	}
}

// TestRetryWaitsAtLeastTheRetryInfoDelay proves the client honours google.rpc.RetryInfo over its own backoff.
func TestRetryWaitsAtLeastTheRetryInfoDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	srv := &scriptedServer{trackScript: []error{exhausted(t, delay)}}
	c := startTCP(t, srv, fastRetry)

	if _, err := c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"}); err != nil {
		t.Fatal(err)
	}
	_, times, _ := srv.snapshot()
	if len(times) != 2 {
		t.Fatalf("attempts = %d, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < delay {
		t.Fatalf("retried after %v, RetryInfo asked for %v", gap, delay)
	}
}

// TestRetryNeverSleepsPastTheDeadline proves a RetryInfo delay beyond the deadline ends the call at once.
func TestRetryNeverSleepsPastTheDeadline(t *testing.T) {
	srv := &scriptedServer{trackScript: []error{exhausted(t, 10*time.Second), exhausted(t, 10*time.Second)}}
	c := startTCP(t, srv, fastRetry)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Track(ctx, Track{WriteKey: "wk", UserID: "u", Event: "E"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("err = %v, want RESOURCE_EXHAUSTED", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v: the client waited for a retry it had no time for", took)
	}
	if tracks, _, _ := srv.snapshot(); len(tracks) != 1 {
		t.Fatalf("attempts = %d, want 1", len(tracks))
	}
}

// TestRetriesStopAtMaxAttempts proves RetryPolicy.MaxAttempts bounds the attempts.
func TestRetriesStopAtMaxAttempts(t *testing.T) {
	srv := &scriptedServer{trackScript: []error{unavailable(), unavailable(), unavailable(), unavailable()}}
	c := startTCP(t, srv, WithRetryPolicy(RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond}))

	_, err := c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want UNAVAILABLE", err)
	}
	if tracks, _, _ := srv.snapshot(); len(tracks) != 2 {
		t.Fatalf("attempts = %d, want 2", len(tracks))
	}
}

// TestInvalidArgumentIsATypedErrorAndNeverRetried proves the field violations reach the caller after one attempt.
func TestInvalidArgumentIsATypedErrorAndNeverRetried(t *testing.T) {
	srv := &scriptedServer{trackScript: []error{badRequest(t, "user_id", "required for partner streams")}}
	c := startTCP(t, srv, fastRetry)

	_, err := c.Track(context.Background(), Track{WriteKey: "wk", Event: "E", MessageID: "m-1"})
	var invalid *InvalidEventError
	if !errors.As(err, &invalid) {
		t.Fatalf("err = %#v, want *InvalidEventError", err)
	}
	if invalid.MessageID != "m-1" || invalid.Code != codes.InvalidArgument {
		t.Errorf("error = %+v", invalid)
	}
	if len(invalid.Violations) != 1 || invalid.Violations[0].Field != "user_id" ||
		invalid.Violations[0].Description != "required for partner streams" {
		t.Errorf("violations = %+v", invalid.Violations)
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("status.Code = %v", status.Code(err))
	}
	if tracks, _, _ := srv.snapshot(); len(tracks) != 1 {
		t.Fatalf("attempts = %d, want 1", len(tracks))
	}
}

// TestOtherCodesAreNotRetried proves a status outside UNAVAILABLE/RESOURCE_EXHAUSTED returns at once, unchanged.
func TestOtherCodesAreNotRetried(t *testing.T) {
	srv := &scriptedServer{trackScript: []error{status.Error(codes.FailedPrecondition, "needs OAuth")}}
	c := startTCP(t, srv, fastRetry)

	_, err := c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("err = %v", err)
	}
	if tracks, _, _ := srv.snapshot(); len(tracks) != 1 {
		t.Fatalf("attempts = %d, want 1", len(tracks))
	}
}

// TestDefaultDeadlineAppliesWhenTheContextHasNone proves a call without a deadline cannot hang forever.
func TestDefaultDeadlineAppliesWhenTheContextHasNone(t *testing.T) {
	srv := &scriptedServer{blockTrack: true}
	c := startTCP(t, srv, WithTimeout(200*time.Millisecond))

	start := time.Now()
	_, err := c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DEADLINE_EXCEEDED", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %v", took)
	}
}

// TestObjectFieldsAreSentAsJSONBytesOrStruct proves maps and typed structs go as JSON bytes and a Struct as a
// Struct, with an explicit message id kept as given.
func TestObjectFieldsAreSentAsJSONBytesOrStruct(t *testing.T) {
	srv := &scriptedServer{}
	c := startTCP(t, srv)
	type order struct {
		OrderID string `json:"order_id"`
		Total   int64  `json:"total"`
	}
	traits, err := structpb.NewStruct(map[string]any{"plan": "pro"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Track(ctx, Track{WriteKey: "wk", UserID: "u", MessageID: "given", Event: "Order Completed",
		Properties: order{OrderID: "o-1", Total: 9007199254740993}, Context: traits}); err != nil {
		t.Fatal(err)
	}
	tracks, _, _ := srv.snapshot()
	got := tracks[0]
	if got.GetMessageId() != "given" {
		t.Errorf("message id = %q", got.GetMessageId())
	}
	if string(got.GetPropertiesJson()) != `{"order_id":"o-1","total":9007199254740993}` {
		t.Errorf("properties_json = %s", got.GetPropertiesJson())
	}
	if got.GetProperties() != nil || got.GetContext().GetFields()["plan"].GetStringValue() != "pro" {
		t.Errorf("struct fields = %v / %v", got.GetProperties(), got.GetContext())
	}
	if _, err := c.Track(ctx, Track{WriteKey: "wk", UserID: "u", Event: "E", Properties: []int{1}}); err == nil {
		t.Error("a JSON array was accepted as properties")
	}
	raw := json.RawMessage(`{"a":1}`)
	if _, err := c.Track(ctx, Track{WriteKey: "wk", UserID: "u", Event: "E", Properties: raw}); err != nil {
		t.Fatal(err)
	}
	if tracks, _, _ = srv.snapshot(); string(tracks[1].GetPropertiesJson()) != `{"a":1}` {
		t.Errorf("raw properties = %s", tracks[1].GetPropertiesJson())
	}
}

// TestAddressComesFromSIDECAR_ADDRESS proves New reads the environment when no address is given.
func TestAddressComesFromSIDECAR_ADDRESS(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &scriptedServer{}
	serve(t, lis, srv)
	t.Setenv("SIDECAR_ADDRESS", lis.Addr().String())
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"}); err != nil {
		t.Fatal(err)
	}
	if tracks, _, _ := srv.snapshot(); len(tracks) != 1 {
		t.Fatalf("server got %d calls", len(tracks))
	}
}

// TestUnixSocketAddress proves "unix:/path" reaches a server listening on a unix socket.
func TestUnixSocketAddress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sidecar.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &scriptedServer{}
	serve(t, lis, srv)
	c, err := New(WithAddress("unix:" + path))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"}); err != nil {
		t.Fatal(err)
	}
}

// TestBatchRetriesWholeWithTheSameIDsAndReportsRejections proves per-event results and whole-call retries.
func TestBatchRetriesWholeWithTheSameIDsAndReportsRejections(t *testing.T) {
	srv := &scriptedServer{batchScript: []error{unavailable()}}
	c := startTCP(t, srv, fastRetry)

	results, err := c.Batch(context.Background(),
		Page{WriteKey: "wk", UserID: "u", Name: "Home"},
		Track{WriteKey: "wk", UserID: "u"},
		Alias{WriteKey: "wk", UserID: "u", PreviousID: "anon", MessageID: "alias-1"},
	)
	if err != nil {
		t.Fatal(err)
	}
	_, _, batches := srv.snapshot()
	if len(batches) != 2 {
		t.Fatalf("attempts = %d, want 2", len(batches))
	}
	for i := range 3 {
		if a, b := messageIDOf(batches[0].Events[i]), messageIDOf(batches[1].Events[i]); a != b || a == "" {
			t.Errorf("event %d: ids %q then %q", i, a, b)
		}
		if results[i].MessageID != messageIDOf(batches[1].Events[i]) {
			t.Errorf("result %d id %q", i, results[i].MessageID)
		}
	}
	if results[0].Err != nil || results[2].Err != nil || results[2].MessageID != "alias-1" {
		t.Errorf("results = %+v", results)
	}
	var invalid *InvalidEventError
	if !errors.As(results[1].Err, &invalid) || invalid.Violations[0].Field != "event" {
		t.Fatalf("rejection = %v", results[1].Err)
	}
}

// TestBatchRejectsTooManyEvents proves the client enforces the Batch RPC's event cap before sending.
func TestBatchRejectsTooManyEvents(t *testing.T) {
	srv := &scriptedServer{}
	c := startTCP(t, srv)
	events := make([]Event, MaxBatchEvents+1)
	for i := range events {
		events[i] = Track{WriteKey: "wk", UserID: "u", Event: "E"}
	}
	if _, err := c.Batch(context.Background(), events...); err == nil {
		t.Fatal("an oversized batch was sent")
	}
	if _, _, batches := srv.snapshot(); len(batches) != 0 {
		t.Fatal("server received an oversized batch")
	}
}

// TestPartialRetryPolicyTakesDefaults proves a policy with zero fields cannot retry in a tight loop.
func TestPartialRetryPolicyTakesDefaults(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3}.withDefaults()
	if p.InitialBackoff != DefaultRetryPolicy.InitialBackoff || p.Multiplier != DefaultRetryPolicy.Multiplier ||
		p.MaxBackoff != DefaultRetryPolicy.MaxBackoff || p.MaxAttempts != 3 {
		t.Fatalf("policy = %+v", p)
	}
	for n := 1; n < 10; n++ {
		if d := p.backoff(n); d < 0 || d > p.MaxBackoff {
			t.Fatalf("backoff(%d) = %v", n, d)
		}
	}
}
