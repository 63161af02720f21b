package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/segment-sidecar/segment-sidecar/clients/go/gen/segment/sidecar/v1"
)

// Outcome is one record of the sidecar's outcome log: an event's final outcome, or a change of a write key's
// state. Pass its Cursor as WatchOptions.AfterCursor to resume after it.
type Outcome = sidecarv1.Outcome

// OutcomeKind is what an Outcome says. OutcomeDelivered means Segment answered 2xx for the request that held the
// event, not that Segment kept it.
type OutcomeKind = sidecarv1.OutcomeKind

// The kinds of outcome records.
const (
	OutcomeDelivered    = sidecarv1.OutcomeKind_OUTCOME_KIND_DELIVERED
	OutcomeDeadLettered = sidecarv1.OutcomeKind_OUTCOME_KIND_DEAD_LETTERED
	OutcomeExpired      = sidecarv1.OutcomeKind_OUTCOME_KIND_EXPIRED
	OutcomeKeyRefused   = sidecarv1.OutcomeKind_OUTCOME_KIND_KEY_REFUSED
	OutcomeKeyRecovered = sidecarv1.OutcomeKind_OUTCOME_KIND_KEY_RECOVERED
	OutcomeKeyRetrying  = sidecarv1.OutcomeKind_OUTCOME_KIND_KEY_RETRYING
)

// WriteKeyStatus is what the sidecar knows of one write key in one region: its state, backlog, last delivery and
// dead letters by reason. The key is named by its fingerprint, never itself.
type WriteKeyStatus = sidecarv1.WriteKeyStatus

// WriteKeyState is what Segment's last answers say of a write key.
type WriteKeyState = sidecarv1.WriteKeyState

// The states of a write key; WriteKeyAny, as a filter, matches every state.
const (
	WriteKeyAny      = sidecarv1.WriteKeyState_WRITE_KEY_STATE_UNSPECIFIED
	WriteKeyUnknown  = sidecarv1.WriteKeyState_WRITE_KEY_STATE_UNKNOWN
	WriteKeyOK       = sidecarv1.WriteKeyState_WRITE_KEY_STATE_OK
	WriteKeyRefused  = sidecarv1.WriteKeyState_WRITE_KEY_STATE_REFUSED
	WriteKeyRetrying = sidecarv1.WriteKeyState_WRITE_KEY_STATE_RETRYING
)

// MessageOutcome says where one event is (State) and, once final, its Outcome record.
type MessageOutcome = sidecarv1.GetMessageOutcomeResponse

// The states of one event.
const (
	MessageUnknown      = sidecarv1.MessageState_MESSAGE_STATE_UNKNOWN
	MessageWaiting      = sidecarv1.MessageState_MESSAGE_STATE_WAITING
	MessageInFlight     = sidecarv1.MessageState_MESSAGE_STATE_IN_FLIGHT
	MessageDelivered    = sidecarv1.MessageState_MESSAGE_STATE_DELIVERED
	MessageDeadLettered = sidecarv1.MessageState_MESSAGE_STATE_DEAD_LETTERED
	MessageExpired      = sidecarv1.MessageState_MESSAGE_STATE_EXPIRED
)

// CursorExpiredError is returned by a watch whose cursor is older than the outcome log's window (OUT_OF_RANGE):
// records were dropped. OldestCursor is the oldest cursor the sidecar still holds ("" when it did not say); watch
// again with an empty AfterCursor to read from it.
type CursorExpiredError struct {
	OldestCursor string
	// Message is the sidecar's message.
	Message string
}

// Error says that the cursor expired, and from where reading can start again.
func (e *CursorExpiredError) Error() string {
	return fmt.Sprintf("sidecar: cursor older than the outcome log's window (oldest held: %q): %s", e.OldestCursor,
		e.Message)
}

// GRPCStatus lets status.Code see codes.OutOfRange.
func (e *CursorExpiredError) GRPCStatus() *status.Status {
	return status.New(codes.OutOfRange, e.Message)
}

// oldestCursorKey is the google.rpc.ErrorInfo metadata key naming the oldest cursor held.
const oldestCursorKey = "oldest_cursor"

// cursorExpired builds the typed error of an OUT_OF_RANGE status, with the oldest cursor its ErrorInfo detail
// names (empty when the sidecar holds no record).
func cursorExpired(st *status.Status) *CursorExpiredError {
	e := &CursorExpiredError{Message: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetMetadata()[oldestCursorKey] != "" {
			e.OldestCursor = info.GetMetadata()[oldestCursorKey]
			return e
		}
	}
	return e
}

// GetWriteKeyStatus says what the sidecar knows of writeKey in region (state UNKNOWN for a key never sent). It
// retries like every unary call, within ctx's deadline or DefaultTimeout.
func (c *Client) GetWriteKeyStatus(ctx context.Context, writeKey string, region Region) (*WriteKeyStatus, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	var resp *sidecarv1.GetWriteKeyStatusResponse
	err := c.withRetry(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.stub.GetWriteKeyStatus(ctx,
			&sidecarv1.GetWriteKeyStatusRequest{WriteKey: writeKey, Region: region}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetStatus(), nil
}

// ListWriteKeysOptions selects one page of ListWriteKeys.
type ListWriteKeysOptions struct {
	// State keeps only keys in that state; WriteKeyAny (zero) keeps every key.
	State WriteKeyState
	// PageSize is at most this many keys per page (0: the sidecar's default, 100).
	PageSize int
	// PageToken is the previous page's next token; empty for the first page.
	PageToken string
}

// ListWriteKeys returns one page of every write key's status, ordered by fingerprint and region, and the token
// of the next page ("" on the last page). WriteKeys iterates over every page.
func (c *Client) ListWriteKeys(ctx context.Context, o ListWriteKeysOptions) ([]*WriteKeyStatus, string, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	var resp *sidecarv1.ListWriteKeysResponse
	err := c.withRetry(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.stub.ListWriteKeys(ctx, &sidecarv1.ListWriteKeysRequest{
			PageSize: int32(min(max(o.PageSize, 0), 1<<20)), PageToken: o.PageToken, State: o.State}, opts...)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return resp.GetWriteKeys(), resp.GetNextPageToken(), nil
}

// WriteKeys iterates over every write key's status in state (WriteKeyAny: all), page after page, each page one
// ListWriteKeys call. An error ends the iteration after it is yielded.
func (c *Client) WriteKeys(ctx context.Context, state WriteKeyState, pageSize int) iter.Seq2[*WriteKeyStatus, error] {
	return func(yield func(*WriteKeyStatus, error) bool) {
		token := ""
		for {
			page, next, err := c.ListWriteKeys(ctx, ListWriteKeysOptions{State: state, PageSize: pageSize, PageToken: token})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, s := range page {
				if !yield(s, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			token = next
		}
	}
}

// GetMessageOutcome says where the event messageID is: waiting, in flight, delivered, dead-lettered, expired, or
// unknown within the outcome log's window. writeKey is optional (when several keys may share message ids).
func (c *Client) GetMessageOutcome(ctx context.Context, messageID, writeKey string) (*MessageOutcome, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	var resp *sidecarv1.GetMessageOutcomeResponse
	err := c.withRetry(ctx, func(ctx context.Context, opts ...grpc.CallOption) error {
		var err error
		resp, err = c.stub.GetMessageOutcome(ctx,
			&sidecarv1.GetMessageOutcomeRequest{MessageId: messageID, WriteKey: writeKey}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// WatchOptions says where a watch starts and which records it wants.
type WatchOptions struct {
	// AfterCursor resumes after this cursor; "" starts with the oldest record held (or, with FromNow, after the
	// newest).
	AfterCursor string
	// WriteKeys keeps only these keys' records (the keys themselves); empty for every key.
	WriteKeys []string
	// Kinds keeps only records of these kinds; empty for every kind.
	Kinds []OutcomeKind
	// FromNow, without a cursor yet, starts after the newest record.
	FromNow bool
}

// WatchOutcomes follows the outcome log: every record after opts.AfterCursor, then new ones as they come, until
// ctx is done or the loop breaks:
//
//	for outcome, err := range client.WatchOutcomes(ctx, sidecar.WatchOptions{AfterCursor: saved}) {
//		if err != nil { return err }
//		saved = outcome.GetCursor()
//	}
//
// The watch resumes by itself: after UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED it did not cause, or a stream the
// sidecar ended (a restart, a dropped connection), it reconnects with the cursor of the last record it yielded, so
// nothing is missed and nothing comes twice. Before its first record it resumes from the cursor the sidecar said
// the stream started after (its outcome-start-cursor header), so a FromNow or filtered watch lost early misses
// nothing written meanwhile. Unlike a unary call it does not give up after MaxAttempts: it reconnects for as long
// as ctx lives, waiting as the RetryPolicy says (the bound doubles from InitialBackoff to MaxBackoff, 2 s by
// default, and starts again after every record; at least the server's RetryInfo).
//
// It yields one error and ends: *CursorExpiredError when the cursor is older than the window, ctx.Err() when ctx
// is done, or the status of a failure that is not retryable. A closed Client ends it without an error.
func (c *Client) WatchOutcomes(ctx context.Context, opts WatchOptions) iter.Seq2[*Outcome, error] {
	return func(yield func(*Outcome, error) bool) {
		cursor := opts.AfterCursor
		failures := 0
		for {
			stop, err := c.watchOnce(ctx, opts, &cursor, &failures, yield)
			if stop {
				return
			}
			if d, has := ctx.Deadline(); has && status.Code(err) == codes.DeadlineExceeded && time.Until(d) < time.Second {
				// gRPC's own timer for ctx's deadline may fire just before ctx's: report the caller's deadline.
				<-ctx.Done()
			}
			if ctx.Err() != nil {
				yield(nil, ctx.Err())
				return
			}
			if c.closed.Load() {
				return
			}
			st := status.Convert(err)
			if errors.Is(err, io.EOF) {
				st = status.New(codes.Unavailable, "the sidecar ended the stream")
			}
			if st.Code() == codes.OutOfRange {
				yield(nil, cursorExpired(st))
				return
			}
			if !retryable(st.Code()) {
				yield(nil, err)
				return
			}
			failures++
			timer := time.NewTimer(max(c.retry.backoff(failures), serverDelay(st, nil)))
			select {
			case <-ctx.Done():
				timer.Stop()
				yield(nil, ctx.Err())
				return
			case <-timer.C:
			}
		}
	}
}

// startCursorHeader is the response header naming the cursor a WatchOutcomes stream starts after.
const startCursorHeader = "outcome-start-cursor"

// watchOnce runs one connection of a watch: it yields records (advancing *cursor, resetting *failures) until the
// stream fails, returning its error, or until the caller breaks the loop (stop). Without a cursor yet, it takes
// the stream's start cursor from its headers, so that a reconnect resumes there rather than from now again.
func (c *Client) watchOnce(ctx context.Context, opts WatchOptions, cursor *string, failures *int,
	yield func(*Outcome, error) bool) (stop bool, err error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.stub.WatchOutcomes(streamCtx, &sidecarv1.WatchOutcomesRequest{
		AfterCursor: *cursor, WriteKeys: opts.WriteKeys, Kinds: opts.Kinds, FromNow: opts.FromNow && *cursor == "",
	})
	if err != nil {
		return false, err
	}
	if *cursor == "" {
		// Header waits for the headers or the stream's end; an error here comes again from Recv, and a sidecar
		// that sends no start cursor leaves the watch to resume as it started.
		if header, err := stream.Header(); err == nil {
			if start := header.Get(startCursorHeader); len(start) > 0 {
				*cursor = start[0]
			}
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return false, err
		}
		*failures = 0
		*cursor = resp.GetOutcome().GetCursor()
		if !yield(resp.GetOutcome(), nil) {
			return true, nil
		}
	}
}
