package sidecar

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/segment-sidecar/segment-sidecar/clients/go/gen/segment/sidecar/v1"
)

// DefaultAddress is where the sidecar listens unless SIDECAR_ADDRESS or WithAddress says otherwise.
const DefaultAddress = "127.0.0.1:50051"

// Default deadlines, applied when a call's context has none. A call's deadline bounds all its retries.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultFlushTimeout = 60 * time.Second
)

// Client sends Segment Spec calls to a segment-sidecar. It is safe for concurrent use; make one per process and
// Close it at exit.
type Client struct {
	address      string
	closed       atomic.Bool
	conn         *grpc.ClientConn
	stub         sidecarv1.SidecarServiceClient
	timeout      time.Duration
	flushTimeout time.Duration
	retry        RetryPolicy
}

type config struct {
	address      string
	timeout      time.Duration
	flushTimeout time.Duration
	retry        RetryPolicy
	dialOptions  []grpc.DialOption
}

// Option configures New.
type Option func(*config)

// WithAddress sets the sidecar's address: "host:port", or "unix:/path/to/socket" (also "unix:///path").
// By default the client reads SIDECAR_ADDRESS, then falls back to DefaultAddress.
func WithAddress(address string) Option { return func(c *config) { c.address = address } }

// WithTimeout sets the deadline given to a call (retries included) whose context has none.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithFlushTimeout sets the deadline given to Flush when its context has none.
func WithFlushTimeout(d time.Duration) Option { return func(c *config) { c.flushTimeout = d } }

// WithRetryPolicy replaces DefaultRetryPolicy.
func WithRetryPolicy(p RetryPolicy) Option { return func(c *config) { c.retry = p } }

// WithDialOptions adds grpc.DialOptions (interceptors, keepalive, ...) to the connection.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOptions = append(c.dialOptions, opts...) }
}

// New makes a client. It does not connect yet: the connection is made on the first call and re-made as needed.
func New(opts ...Option) (*Client, error) {
	cfg := config{
		address:      os.Getenv("SIDECAR_ADDRESS"),
		timeout:      DefaultTimeout,
		flushTimeout: DefaultFlushTimeout,
		retry:        DefaultRetryPolicy,
	}
	if cfg.address == "" {
		cfg.address = DefaultAddress
	}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.retry = cfg.retry.withDefaults()
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, cfg.dialOptions...)
	conn, err := grpc.NewClient(target(cfg.address), dial...)
	if err != nil {
		return nil, fmt.Errorf("sidecar: address %q: %w", cfg.address, err)
	}
	return &Client{
		address:      cfg.address,
		conn:         conn,
		stub:         sidecarv1.NewSidecarServiceClient(conn),
		timeout:      cfg.timeout,
		flushTimeout: cfg.flushTimeout,
		retry:        cfg.retry,
	}, nil
}

// target turns an address into a gRPC target. A bare host:port goes through the passthrough resolver, so an IP
// address never waits on DNS; "unix:" addresses are gRPC targets already.
func target(address string) string {
	if strings.HasPrefix(address, "unix:") || strings.Contains(address, "://") {
		return address
	}
	return "passthrough:///" + address
}

// Close releases the connection. Calls in flight fail with codes.Canceled, and are not retried.
func (c *Client) Close() error {
	c.closed.Store(true)
	return c.conn.Close()
}

// Result is the sidecar's acknowledgement of an event: it is durably spooled and will be delivered at least once.
type Result struct {
	MessageID string
	Warnings  []Warning
}

// withDefaultDeadline gives ctx the default deadline d when it has none.
func withDefaultDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, has := ctx.Deadline(); has || d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// unary runs one event call with the default deadline and retries, and types an INVALID_ARGUMENT.
func unary[Req any, Resp interface{ GetWarnings() []*sidecarv1.Warning }](
	ctx context.Context, c *Client, id string, req Req,
	call func(context.Context, Req, ...grpc.CallOption) (Resp, error),
) (Result, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	var resp Resp
	err := c.withRetry(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = call(ctx, req, opts...)
		return err
	})
	if err != nil {
		return Result{MessageID: id}, typed(err, id)
	}
	return Result{MessageID: id, Warnings: warnings(resp.GetWarnings())}, nil
}

// typed turns an INVALID_ARGUMENT status into an *InvalidEventError and leaves other errors as they are.
func typed(err error, id string) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
		return invalidEventFromStatus(st, id)
	}
	return err
}

func warnings(ws []*sidecarv1.Warning) []Warning {
	if len(ws) == 0 {
		return nil
	}
	out := make([]Warning, len(ws))
	for i, w := range ws {
		out[i] = Warning{Code: w.GetCode(), Field: w.GetField(), Message: w.GetMessage()}
	}
	return out
}

// idFor returns the event's own message id, or a new one.
func idFor(e Event) string {
	if id := e.messageID(); id != "" {
		return id
	}
	return newMessageID()
}

// Track records that a user performed an action. It returns once the sidecar has spooled the event.
func (c *Client) Track(ctx context.Context, e Track) (Result, error) {
	id := idFor(e)
	req, err := e.toRequest(id)
	if err != nil {
		return Result{MessageID: id}, err
	}
	return unary(ctx, c, id, req, c.stub.Track)
}

// Identify ties a user to their traits.
func (c *Client) Identify(ctx context.Context, e Identify) (Result, error) {
	id := idFor(e)
	req, err := e.toRequest(id)
	if err != nil {
		return Result{MessageID: id}, err
	}
	return unary(ctx, c, id, req, c.stub.Identify)
}

// Page records a web page view.
func (c *Client) Page(ctx context.Context, e Page) (Result, error) {
	id := idFor(e)
	req, err := e.toRequest(id)
	if err != nil {
		return Result{MessageID: id}, err
	}
	return unary(ctx, c, id, req, c.stub.Page)
}

// Screen records a mobile screen view.
func (c *Client) Screen(ctx context.Context, e Screen) (Result, error) {
	id := idFor(e)
	req, err := e.toRequest(id)
	if err != nil {
		return Result{MessageID: id}, err
	}
	return unary(ctx, c, id, req, c.stub.Screen)
}

// Group associates a user with a group.
func (c *Client) Group(ctx context.Context, e Group) (Result, error) {
	id := idFor(e)
	req, err := e.toRequest(id)
	if err != nil {
		return Result{MessageID: id}, err
	}
	return unary(ctx, c, id, req, c.stub.Group)
}

// Alias merges a previous identity into a user id.
func (c *Client) Alias(ctx context.Context, e Alias) (Result, error) {
	id := idFor(e)
	req, err := e.toRequest(id)
	if err != nil {
		return Result{MessageID: id}, err
	}
	return unary(ctx, c, id, req, c.stub.Alias)
}

// BatchResult is the outcome of one event of a Batch call.
type BatchResult struct {
	// MessageID is the id the event was sent with (the client's own when the event had none).
	MessageID string
	Warnings  []Warning
	// Err is nil when the event was spooled, else an *InvalidEventError saying why it was rejected.
	Err error
}

// MaxBatchEvents is the most events one Batch call may carry (the sidecar also caps a call at 16 MiB).
const MaxBatchEvents = 10000

// Batch sends events of any type in one call and returns one result per event, in order. One invalid event does
// not reject the others: its result carries an *InvalidEventError. The returned error is for the whole call (after
// retries with the same message ids), such as UNAVAILABLE past the deadline.
func (c *Client) Batch(ctx context.Context, events ...Event) ([]BatchResult, error) {
	batch, ids, err := batchRequest(events)
	if err != nil {
		return nil, err
	}
	resp, err := c.sendBatch(ctx, batch)
	if err != nil {
		return nil, err
	}
	return batchResults(resp, ids)
}

// batchRequest encodes events, fixing a message id for each.
func batchRequest(events []Event) (*encodedBatch, []string, error) {
	if len(events) > MaxBatchEvents {
		return nil, nil, fmt.Errorf("sidecar: %d events in one batch, at most %d", len(events), MaxBatchEvents)
	}
	var wire []byte
	ids := make([]string, len(events))
	for i, e := range events {
		if e == nil {
			return nil, nil, fmt.Errorf("sidecar: batch event %d is nil", i)
		}
		ids[i] = idFor(e)
		var err error
		if wire, err = appendBatchEvent(wire, e, ids[i]); err != nil {
			return nil, nil, fmt.Errorf("sidecar: batch event %d: %w", i, err)
		}
	}
	return &encodedBatch{wire: wire}, ids, nil
}

// sendBatch sends an encoded batch with the default deadline and retries.
func (c *Client) sendBatch(ctx context.Context, batch *encodedBatch) (*sidecarv1.BatchResponse, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	var resp *sidecarv1.BatchResponse
	err := c.withRetry(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.invokeBatch(ctx, batch, opts...)
		return err
	})
	return resp, err
}

// batchResults maps a BatchResponse onto the events' message ids.
func batchResults(resp *sidecarv1.BatchResponse, ids []string) ([]BatchResult, error) {
	if len(resp.GetResults()) != len(ids) {
		return nil, fmt.Errorf("sidecar: %d results for %d events", len(resp.GetResults()), len(ids))
	}
	out := make([]BatchResult, len(ids))
	for i, r := range resp.GetResults() {
		out[i] = BatchResult{MessageID: ids[i], Warnings: warnings(r.GetWarnings())}
		if rej := r.GetRejected(); rej != nil {
			e := &InvalidEventError{MessageID: ids[i], Code: codes.Code(rej.GetCode()), Reason: rej.GetReason()}
			for _, v := range rej.GetFieldViolations() {
				e.Violations = append(e.Violations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
			out[i].Err = e
		}
	}
	return out, nil
}

// FlushResult reports what the sidecar did with the events it had accepted before a Flush.
type FlushResult struct {
	Delivered            int64    // events delivered since the sidecar started
	DeadLettered         int64    // events given up on since the sidecar started
	Parked               int64    // accepted events waiting on a revoked or invalid write key (not waited for)
	ParkedWriteKeyHashes []string // short hashes of those write keys
}

// Flush returns when every event the sidecar accepted before the call has been delivered or given up on. Without
// a deadline in ctx it waits at most DefaultFlushTimeout (see WithFlushTimeout).
func (c *Client) Flush(ctx context.Context) (FlushResult, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.flushTimeout)
	defer cancel()
	var resp *sidecarv1.FlushResponse
	err := c.withRetry(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.stub.Flush(ctx, &sidecarv1.FlushRequest{}, opts...)
		return err
	})
	if err != nil {
		return FlushResult{}, err
	}
	return FlushResult{
		Delivered: resp.GetDelivered(), DeadLettered: resp.GetDeadLettered(), Parked: resp.GetParked(),
		ParkedWriteKeyHashes: resp.GetParkedWriteKeyHashes(),
	}, nil
}

// errClosed is returned by a Batcher used after Close.
var errClosed = errors.New("sidecar: batcher is closed")
