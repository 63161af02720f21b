package sidecar

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RetryPolicy says how a call is retried when the sidecar answers UNAVAILABLE (shutting down, not reachable) or
// RESOURCE_EXHAUSTED (spool full). Every other status is returned at once: INVALID_ARGUMENT in particular is never
// retried. A retry re-sends the same message ids. Retries stop at the call's deadline: the client never sleeps past
// it, and returns the last error instead.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts, the first included; 0 means no bound other than the deadline. Zero values
	// of the other fields take DefaultRetryPolicy's.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry; it grows by Multiplier up to MaxBackoff, with full jitter.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Multiplier     float64
}

// DefaultRetryPolicy retries until the deadline, waiting 50 ms, 100 ms, ... up to 2 s between attempts, or longer
// when the sidecar's google.rpc.RetryInfo asks for it.
var DefaultRetryPolicy = RetryPolicy{InitialBackoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second, Multiplier: 2}

// withDefaults fills the zero fields of p from DefaultRetryPolicy, so that a partial policy never retries in a
// tight loop (a zero backoff or a multiplier below 1).
func (p RetryPolicy) withDefaults() RetryPolicy {
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

// retryable reports whether a call that failed with code may be sent again unchanged.
func retryable(code codes.Code) bool {
	return code == codes.Unavailable || code == codes.ResourceExhausted
}

// serverDelay returns the delay a google.rpc.RetryInfo detail of st asks for, or 0.
func serverDelay(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// backoff returns the jittered wait before retry number n (1-based) under p.
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
	// Half fixed, half random: spreads retries of many producers without ever waiting (almost) nothing.
	return time.Duration(d/2 + rand.Float64()*d/2)
}

// withRetry runs attempt until it succeeds, fails with a status that is not retryable, runs out of attempts, or
// the next wait would end after ctx's deadline. The wait before a retry is max(backoff, RetryInfo delay).
func withRetry(ctx context.Context, p RetryPolicy, attempt func(context.Context) error) error {
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		st, ok := status.FromError(err)
		if !ok || !retryable(st.Code()) {
			return err
		}
		if p.MaxAttempts > 0 && n >= p.MaxAttempts {
			return fmt.Errorf("sidecar: gave up after %d attempts: %w", n, err)
		}
		wait := max(p.backoff(n), serverDelay(st))
		if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= wait {
			return fmt.Errorf("sidecar: gave up after %d attempts, the deadline comes before the next one: %w", n, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("sidecar: gave up after %d attempts (%w): %w", n, ctx.Err(), err)
		case <-timer.C:
		}
	}
}
