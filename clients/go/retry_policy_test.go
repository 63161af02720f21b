package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestDefaultsAreTheSharedPolicy proves DefaultRetryPolicy is clients/retry-policy.json's, the one policy of the
// four clients.
func TestDefaultsAreTheSharedPolicy(t *testing.T) {
	raw, err := os.ReadFile("../retry-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var config struct {
		MethodConfig []struct {
			RetryPolicy struct {
				MaxAttempts          int
				InitialBackoff       string
				MaxBackoff           string
				BackoffMultiplier    float64
				RetryableStatusCodes []string
			}
		}
	}
	if err := json.Unmarshal(raw, &config); err != nil {
		t.Fatal(err)
	}
	want := config.MethodConfig[0].RetryPolicy
	initial, _ := time.ParseDuration(want.InitialBackoff)
	maxBackoff, _ := time.ParseDuration(want.MaxBackoff)
	got := DefaultRetryPolicy
	if got.MaxAttempts != want.MaxAttempts || got.InitialBackoff != initial || got.MaxBackoff != maxBackoff ||
		got.Multiplier != want.BackoffMultiplier {
		t.Fatalf("DefaultRetryPolicy = %+v, retry-policy.json says %+v", got, want)
	}
	for _, name := range want.RetryableStatusCodes {
		var code codes.Code
		if err := code.UnmarshalJSON([]byte(`"` + name + `"`)); err != nil || !retryable(code) {
			t.Fatalf("%s is not retried (%v)", name, err)
		}
	}
}

// TestNoSidecarGivesUpAfterFiveAttemptsNamingTheAddress proves that against a closed port the client makes the
// policy's 5 attempts and gives up within the sum of the jitter bounds (0.2+0.4+0.8+1.6 = 3.0 s), with an error
// that names the address and SIDECAR_ADDRESS.
func TestNoSidecarGivesUpAfterFiveAttemptsNamingTheAddress(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := lis.Addr().String()
	_ = lis.Close()
	c, err := New(WithAddress(address))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	start := time.Now()
	_, err = c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"})
	took := time.Since(start)
	var gaveUp *GiveUpError
	if !errors.As(err, &gaveUp) {
		t.Fatalf("err = %v, want a *GiveUpError", err)
	}
	t.Logf("go: %d attempts, gave up after %.2f s: %v", gaveUp.Attempts, took.Seconds(), err)
	if gaveUp.Attempts != 5 || status.Code(err) != codes.Unavailable {
		t.Fatalf("attempts = %d, code = %v; want 5, UNAVAILABLE", gaveUp.Attempts, status.Code(err))
	}
	if took > 3500*time.Millisecond {
		t.Fatalf("gave up after %v, the policy's bound is 3 s", took)
	}
	for _, part := range []string{"cannot connect to the sidecar at " + address, "SIDECAR_ADDRESS", "gave up after 5 attempts"} {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("error %q does not say %q", err, part)
		}
	}
}

// TestCancelledByTheServerIsRetried proves a CANCELLED the caller did not cause is retried with the same id.
func TestCancelledByTheServerIsRetried(t *testing.T) {
	srv := &scriptedServer{trackScript: []error{status.Error(codes.Canceled, "overloaded")}}
	c := startTCP(t, srv, fastRetry)
	if _, err := c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"}); err != nil {
		t.Fatal(err)
	}
	tracks, _, _ := srv.snapshot()
	if len(tracks) != 2 || tracks[0].GetMessageId() != tracks[1].GetMessageId() {
		t.Fatalf("attempts = %d, want 2 with one message id", len(tracks))
	}
}

// TestCancelledByTheCallerIsNotRetried proves a call whose context the caller cancelled ends without a retry.
func TestCancelledByTheCallerIsNotRetried(t *testing.T) {
	srv := &scriptedServer{blockTrack: true}
	c := startTCP(t, srv, fastRetry)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if tracks, _, _ := srv.snapshot(); len(tracks) > 0 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_, err := c.Track(ctx, Track{WriteKey: "wk", UserID: "u", Event: "E"})
	if status.Code(err) != codes.Canceled {
		t.Fatalf("err = %v, want CANCELLED", err)
	}
	if tracks, _, _ := srv.snapshot(); len(tracks) != 1 {
		t.Fatalf("attempts = %d, want 1", len(tracks))
	}
}

// TestPushbackTrailerIsHonoured proves a grpc-retry-pushback-ms trailer delays the retry like a RetryInfo.
func TestPushbackTrailerIsHonoured(t *testing.T) {
	srv := &scriptedServer{trackScript: []error{unavailable()}, trackTrailer: metadata.Pairs(pushbackKey, "400")}
	c := startTCP(t, srv, fastRetry)
	if _, err := c.Track(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"}); err != nil {
		t.Fatal(err)
	}
	_, times, _ := srv.snapshot()
	if len(times) != 2 || times[1].Sub(times[0]) < 390*time.Millisecond {
		t.Fatalf("retried after %v, the trailer asked for 400 ms", times[len(times)-1].Sub(times[0]))
	}
}
