package sidecar

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RetryPolicy says how a call is retried. It is the policy every client of this repository follows, written once
// in clients/retry-policy.json (a gRPC service config; a test fails when DefaultRetryPolicy drifts from it):
//
//   - retried: UNAVAILABLE (shutting down, not reachable), RESOURCE_EXHAUSTED (spool full, too many calls), and
//     CANCELLED that the caller did not cause (gRPC's answer under overload); never INVALID_ARGUMENT or any other
//     code. A call whose ctx is done, or whose Client was closed, is not retried;
//   - at most MaxAttempts attempts, the first included, all within the call's one deadline;
//   - the wait before retry n is random in [0, min(MaxBackoff, InitialBackoff*Multiplier^(n-1))] (full jitter, as
//     gRPC's own retries), or the server's google.rpc.RetryInfo or grpc-retry-pushback-ms delay when longer;
//   - the client gives up when the attempts are used, or when the wait would end at or after the deadline, and
//     returns a *GiveUpError wrapping the last status.
//
// A retry re-sends the same message ids.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts, the first included (1 never retries). Zero values of every field take
	// DefaultRetryPolicy's.
	MaxAttempts int
	// InitialBackoff bounds the first jittered wait; the bound grows by Multiplier up to MaxBackoff.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Multiplier     float64
}

// DefaultRetryPolicy makes at most 5 attempts, waiting a random time below 0.2 s, 0.4 s, 0.8 s, 1.6 s between them
// (2 s at most), or longer when the sidecar asks for it.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts: 5, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second, Multiplier: 2,
}

// withDefaults fills the zero fields of p from DefaultRetryPolicy, so that a partial policy never retries in a
// tight loop (a zero backoff or a multiplier below 1).
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = DefaultRetryPolicy.InitialBackoff
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = max(DefaultRetryPolicy.MaxBackoff, p.InitialBackoff)
	}
	if p.Multiplier < 1 {
		p.Multiplier = DefaultRetryPolicy.Multiplier
	}
	return p
}

// retryable reports whether a call that failed with code may be sent again unchanged (when its caller did not
// cancel it).
func retryable(code codes.Code) bool {
	return code == codes.Unavailable || code == codes.ResourceExhausted || code == codes.Canceled
}

// pushbackKey is gRPC's own trailer for a server's retry delay, in milliseconds.
const pushbackKey = "grpc-retry-pushback-ms"

// serverDelay returns the longer of the delays a google.rpc.RetryInfo detail of st and a grpc-retry-pushback-ms
// trailer ask for, or 0.
func serverDelay(st *status.Status, trailer metadata.MD) time.Duration {
	var d time.Duration
	for _, detail := range st.Details() {
		if ri, ok := detail.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			d = ri.GetRetryDelay().AsDuration()
			break
		}
	}
	for _, v := range trailer.Get(pushbackKey) {
		if ms, err := strconv.Atoi(v); err == nil && ms >= 0 {
			d = max(d, time.Duration(ms)*time.Millisecond)
		}
	}
	return d
}

// backoff returns the jittered wait before retry number n (1-based) under p: random in [0, bound).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := float64(p.InitialBackoff)
	for i := 1; i < n; i++ {
		d *= p.Multiplier
		if p.MaxBackoff > 0 && d >= float64(p.MaxBackoff) {
			d = float64(p.MaxBackoff)
			break
		}
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Float64() * d)
}

// GiveUpError is the error of a call that failed with a retryable status until its attempts or its deadline ran
// out. status.Code and status.FromError see the last status through it.
type GiveUpError struct {
	// Address is the sidecar's address the client was using.
	Address string
	// Attempts is how many attempts were made, the first included.
	Attempts int
	// Elapsed is the time from the first attempt to giving up.
	Elapsed time.Duration
	// Err is the last attempt's error.
	Err error
}

// Error says what was tried; when the sidecar could not be reached at all, it names the address and what to check.
func (e *GiveUpError) Error() string {
	tried := fmt.Sprintf("gave up after %d attempt%s in %.1f s", e.Attempts, plural(e.Attempts), e.Elapsed.Seconds())
	if cannotConnect(e.Err) {
		return fmt.Sprintf("sidecar: cannot connect to the sidecar at %s: is it running, and is SIDECAR_ADDRESS right? (%s): %v",
			e.Address, tried, e.Err)
	}
	return fmt.Sprintf("sidecar: %s: %v", tried, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *GiveUpError) Unwrap() error { return e.Err }

// GRPCStatus lets status.Code and status.FromError see the last attempt's status.
func (e *GiveUpError) GRPCStatus() *status.Status { return status.Convert(e.Err) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// cannotConnect reports whether err is gRPC's UNAVAILABLE for a sidecar that could not be reached at all.
func cannotConnect(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	msg := strings.ToLower(st.Message())
	for _, part := range []string{"connection refused", "connection error", "no such file", "produced zero addresses"} {
		if strings.Contains(msg, part) {
			return true
		}
	}
	return false
}

// withRetry runs attempt until it succeeds, fails with a status that is not retryable, runs out of attempts, or
// the next wait would end after ctx's deadline. The wait before a retry is max(backoff, the server's delay).
func (c *Client) withRetry(ctx context.Context, attempt func(context.Context, ...grpc.CallOption) error) error {
	p := c.retry
	started := time.Now()
	giveUp := func(n int, err error) error {
		return &GiveUpError{Address: c.address, Attempts: n, Elapsed: time.Since(started), Err: err}
	}
	for n := 1; ; n++ {
		var trailer metadata.MD
		err := attempt(ctx, grpc.Trailer(&trailer))
		if err == nil {
			return nil
		}
		st, ok := status.FromError(err)
		if !ok || !retryable(st.Code()) {
			return err
		}
		// A call its caller cancelled (ctx done, or the client closed) is not retried, whatever gRPC answered.
		if ctx.Err() != nil || c.closed.Load() || n >= p.MaxAttempts {
			return giveUp(n, err)
		}
		wait := max(p.backoff(n), serverDelay(st, trailer))
		if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= wait {
			return giveUp(n, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return giveUp(n, err)
		case <-timer.C:
		}
	}
}
