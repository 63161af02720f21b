package sidecar

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/segment-sidecar/segment-sidecar/clients/go/gen/segment/sidecar/v1"
)

// outcomeServer serves a scripted outcome log: each WatchOutcomes connection sends the records after its cursor
// (after the last with FromNow), dropping the stream with UNAVAILABLE after the number of records its script says,
// or failing at once. With startHeader it names its start cursor in an outcome-start-cursor header, as the sidecar
// does ("c0" before the first record); writtenOnDrop is appended to the log when a stream drops.
type outcomeServer struct {
	sidecarv1.UnimplementedSidecarServiceServer

	mu            sync.Mutex
	log           []*sidecarv1.Outcome
	drops         []int
	failWith      error
	startHeader   bool
	writtenOnDrop []*sidecarv1.Outcome
	cursors       []string
	fromNow       []bool
	pages         [][]string
	tokens        []string
}

// delivered returns n DELIVERED records with cursors c1.. and message ids m1.. .
func delivered(n int) []*sidecarv1.Outcome {
	var out []*sidecarv1.Outcome
	for i := 1; i <= n; i++ {
		out = append(out, &sidecarv1.Outcome{Cursor: "c" + strconv.Itoa(i), Kind: OutcomeDelivered,
			MessageId: "m" + strconv.Itoa(i), WriteKeyFingerprint: "fp", Region: RegionUS, SegmentStatus: 200})
	}
	return out
}

// WatchOutcomes streams the records after the request's cursor, drops as scripted, then waits for the client.
func (s *outcomeServer) WatchOutcomes(r *sidecarv1.WatchOutcomesRequest,
	stream sidecarv1.SidecarService_WatchOutcomesServer) error {
	s.mu.Lock()
	s.cursors = append(s.cursors, r.GetAfterCursor())
	s.fromNow = append(s.fromNow, r.GetFromNow())
	fail := s.failWith
	drop := -1
	if len(s.drops) > 0 {
		drop, s.drops = s.drops[0], s.drops[1:]
	}
	log := s.log
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	start := 0
	if r.GetAfterCursor() != "" && r.GetAfterCursor() != "c0" {
		start = slices.IndexFunc(log, func(o *sidecarv1.Outcome) bool { return o.GetCursor() == r.GetAfterCursor() }) + 1
	} else if r.GetAfterCursor() == "" && r.GetFromNow() {
		start = len(log)
	}
	if s.startHeader {
		startCursor := "c0"
		if start > 0 {
			startCursor = log[start-1].GetCursor()
		}
		if err := stream.SendHeader(metadata.Pairs("outcome-start-cursor", startCursor)); err != nil {
			return err
		}
	}
	for sent, o := range log[start:] {
		if sent == drop {
			break
		}
		if err := stream.Send(&sidecarv1.WatchOutcomesResponse{Outcome: o}); err != nil {
			return err
		}
	}
	if drop >= 0 {
		s.mu.Lock()
		s.log, s.writtenOnDrop = append(s.log, s.writtenOnDrop...), nil
		s.mu.Unlock()
		return status.Error(codes.Unavailable, "scripted drop")
	}
	<-stream.Context().Done()
	return nil
}

// ListWriteKeys answers the scripted page whose index is the token.
func (s *outcomeServer) ListWriteKeys(_ context.Context, r *sidecarv1.ListWriteKeysRequest) (
	*sidecarv1.ListWriteKeysResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = append(s.tokens, r.GetPageToken())
	i, _ := strconv.Atoi(r.GetPageToken())
	resp := &sidecarv1.ListWriteKeysResponse{}
	for _, f := range s.pages[i] {
		resp.WriteKeys = append(resp.WriteKeys, &sidecarv1.WriteKeyStatus{Fingerprint: f, State: r.GetState()})
	}
	if i+1 < len(s.pages) {
		resp.NextPageToken = strconv.Itoa(i + 1)
	}
	return resp, nil
}

// GetWriteKeyStatus answers REFUSED with a 401.
func (s *outcomeServer) GetWriteKeyStatus(_ context.Context, r *sidecarv1.GetWriteKeyStatusRequest) (
	*sidecarv1.GetWriteKeyStatusResponse, error) {
	return &sidecarv1.GetWriteKeyStatusResponse{Status: &sidecarv1.WriteKeyStatus{
		Fingerprint: "fp-" + r.GetWriteKey(), Region: r.GetRegion(), State: WriteKeyRefused, LastStatus: 401}}, nil
}

// GetMessageOutcome answers DELIVERED with the record of a message in the log, else UNKNOWN.
func (s *outcomeServer) GetMessageOutcome(_ context.Context, r *sidecarv1.GetMessageOutcomeRequest) (
	*sidecarv1.GetMessageOutcomeResponse, error) {
	for _, o := range s.log {
		if o.GetMessageId() == r.GetMessageId() {
			return &sidecarv1.GetMessageOutcomeResponse{State: MessageDelivered, Outcome: o}, nil
		}
	}
	return &sidecarv1.GetMessageOutcomeResponse{State: MessageUnknown}, nil
}

var fastReconnect = WithRetryPolicy(RetryPolicy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})

// TestWatchResumesAfterTheLastCursorWhenTheStreamDrops proves that three dropped streams (one before any record)
// are reconnected from the last cursor yielded, delivering every record once.
func TestWatchResumesAfterTheLastCursorWhenTheStreamDrops(t *testing.T) {
	srv := &outcomeServer{log: delivered(10), drops: []int{3, 0, 4}}
	c := startTCP(t, srv, fastReconnect)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ids []string
	for o, err := range c.WatchOutcomes(ctx, WatchOptions{Kinds: []OutcomeKind{OutcomeDelivered}}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.GetMessageId())
		if len(ids) == 10 {
			break
		}
	}
	want := []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10"}
	if !slices.Equal(ids, want) {
		t.Fatalf("got %v, want %v", ids, want)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !slices.Equal(srv.cursors, []string{"", "c3", "c3", "c7"}) {
		t.Fatalf("reconnected with cursors %v", srv.cursors)
	}
}

// TestFromNowWatchDroppedBeforeAnyRecordResumesFromItsStartCursor proves that a FromNow watch whose first stream
// drops before any record reconnects after the start cursor the sidecar named in its headers, not from now again:
// the records written meanwhile come, each once.
func TestFromNowWatchDroppedBeforeAnyRecordResumesFromItsStartCursor(t *testing.T) {
	log := delivered(5)
	srv := &outcomeServer{log: log[:3], writtenOnDrop: log[3:], startHeader: true, drops: []int{0}}
	c := startTCP(t, srv, fastReconnect)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ids []string
	for o, err := range c.WatchOutcomes(ctx, WatchOptions{FromNow: true}) {
		if err != nil {
			t.Fatalf("after %v: %v", ids, err)
		}
		ids = append(ids, o.GetMessageId())
		if len(ids) == 2 {
			break
		}
	}
	if !slices.Equal(ids, []string{"m4", "m5"}) {
		t.Fatalf("got %v, want [m4 m5]", ids)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !slices.Equal(srv.cursors, []string{"", "c3"}) || !slices.Equal(srv.fromNow, []bool{true, false}) {
		t.Fatalf("connected with cursors %v, from now %v", srv.cursors, srv.fromNow)
	}
}

// TestFromNowWatchOfAnEmptyLogResumesFromItsStartCursor proves the same for a log empty at the start (start
// cursor c0), dropped twice before its first record.
func TestFromNowWatchOfAnEmptyLogResumesFromItsStartCursor(t *testing.T) {
	srv := &outcomeServer{writtenOnDrop: delivered(1), startHeader: true, drops: []int{0, 0}}
	if cursors := watchUntilM1(t, srv, WatchOptions{FromNow: true}); !slices.Equal(cursors, []string{"", "c0", "c0"}) {
		t.Fatalf("connected with cursors %v", cursors)
	}
}

// watchUntilM1 watches srv until its first record, which must be m1, and returns the cursors each connection asked
// for.
func watchUntilM1(t *testing.T, srv *outcomeServer, opts WatchOptions) []string {
	t.Helper()
	c := startTCP(t, srv, fastReconnect)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for o, err := range c.WatchOutcomes(ctx, opts) {
		if err != nil {
			t.Fatal(err)
		}
		if o.GetMessageId() != "m1" {
			t.Fatalf("got %v", o)
		}
		break
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return slices.Clone(srv.cursors)
}

// TestWatchKeepsReconnectingPastTheAttemptLimit proves that a watch does not give up after MaxAttempts failures.
func TestWatchKeepsReconnectingPastTheAttemptLimit(t *testing.T) {
	srv := &outcomeServer{log: delivered(1), drops: []int{0, 0, 0, 0, 0, 0, 0, 0}}
	if cursors := watchUntilM1(t, srv, WatchOptions{}); len(cursors) != 9 {
		t.Fatalf("%d connections, want 9", len(cursors))
	}
}

// TestWatchEndsWithTheContext proves that a watch waiting for records ends with ctx's error when ctx is done.
func TestWatchEndsWithTheContext(t *testing.T) {
	c := startTCP(t, &outcomeServer{}, fastReconnect)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var last error
	for _, err := range c.WatchOutcomes(ctx, WatchOptions{FromNow: true}) {
		last = err
	}
	if !errors.Is(last, context.DeadlineExceeded) {
		t.Fatalf("ended with %v", last)
	}
}

// TestCursorOlderThanTheWindowIsTyped proves that OUT_OF_RANGE ends the watch with a *CursorExpiredError naming the
// oldest cursor its ErrorInfo detail holds (empty when the log holds none).
func TestCursorOlderThanTheWindowIsTyped(t *testing.T) {
	withDetail, err := status.New(codes.OutOfRange, "cursor is older than the window").
		WithDetails(&errdetails.ErrorInfo{Reason: "CURSOR_EXPIRED", Metadata: map[string]string{"oldest_cursor": "c42"}})
	if err != nil {
		t.Fatal(err)
	}
	// The sidecar's words when its log is empty (an empty oldest_cursor): no cursor, not a word of the text.
	emptyLog, err := status.New(codes.OutOfRange, "the oldest record held has cursor (none: the log is empty)").
		WithDetails(&errdetails.ErrorInfo{Reason: "CURSOR_EXPIRED", Metadata: map[string]string{"oldest_cursor": ""}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		failure error
		oldest  string
	}{
		"detail":    {withDetail.Err(), "c42"},
		"empty log": {emptyLog.Err(), ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := &outcomeServer{failWith: tc.failure}
			c := startTCP(t, srv, fastReconnect)
			var last error
			for _, err := range c.WatchOutcomes(context.Background(), WatchOptions{AfterCursor: "c1"}) {
				last = err
			}
			var expired *CursorExpiredError
			if !errors.As(last, &expired) || expired.OldestCursor != tc.oldest {
				t.Fatalf("ended with %#v", last)
			}
			if status.Code(last) != codes.OutOfRange || len(srv.cursors) != 1 {
				t.Fatalf("code %v after %d connections", status.Code(last), len(srv.cursors))
			}
		})
	}
}

// TestStatusPagesAndMessageOutcome proves the three unary calls: a key's status, every page of keys, one message.
func TestStatusPagesAndMessageOutcome(t *testing.T) {
	srv := &outcomeServer{log: delivered(2), pages: [][]string{{"a", "b"}, {"c"}}}
	c := startTCP(t, srv)
	ctx := context.Background()
	st, err := c.GetWriteKeyStatus(ctx, "wk", RegionEU)
	if err != nil || st.GetState() != WriteKeyRefused || st.GetFingerprint() != "fp-wk" || st.GetRegion() != RegionEU {
		t.Fatalf("status %v, %v", st, err)
	}
	var fps []string
	for s, err := range c.WriteKeys(ctx, WriteKeyRefused, 2) {
		if err != nil {
			t.Fatal(err)
		}
		fps = append(fps, s.GetFingerprint())
	}
	if !slices.Equal(fps, []string{"a", "b", "c"}) || !slices.Equal(srv.tokens, []string{"", "1"}) {
		t.Fatalf("keys %v, tokens %v", fps, srv.tokens)
	}
	m, err := c.GetMessageOutcome(ctx, "m2", "")
	if err != nil || m.GetState() != MessageDelivered || m.GetOutcome().GetCursor() != "c2" {
		t.Fatalf("message %v, %v", m, err)
	}
}
