package sidecar

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	sidecarv1 "github.com/segment-sidecar/segment-sidecar/clients/go/gen/segment/sidecar/v1"
)

// scriptedServer is a real gRPC SidecarService whose answers the test scripts: each call pops the next error of
// its script and succeeds once the script is empty. It records what it received and when.
type scriptedServer struct {
	sidecarv1.UnimplementedSidecarServiceServer

	mu          sync.Mutex
	trackScript []error
	// trackTrailer is sent with every scripted Track failure (a grpc-retry-pushback-ms, say).
	trackTrailer metadata.MD
	batchScript  []error
	tracks       []*sidecarv1.TrackRequest
	trackTimes   []time.Time
	batches      []*sidecarv1.BatchRequest
	// blockTrack makes Track wait for its context to end (to test default deadlines).
	blockTrack bool
}

// pop removes and returns the first error of *script, or nil.
func pop(script *[]error) error {
	if len(*script) == 0 {
		return nil
	}
	err := (*script)[0]
	*script = (*script)[1:]
	return err
}

// Track records the request and answers per the script.
func (s *scriptedServer) Track(ctx context.Context, r *sidecarv1.TrackRequest) (*sidecarv1.TrackResponse, error) {
	s.mu.Lock()
	s.tracks = append(s.tracks, r)
	s.trackTimes = append(s.trackTimes, time.Now())
	err := pop(&s.trackScript)
	block := s.blockTrack
	s.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if err != nil {
		if s.trackTrailer != nil {
			_ = grpc.SetTrailer(ctx, s.trackTrailer)
		}
		return nil, err
	}
	return &sidecarv1.TrackResponse{MessageId: r.GetMessageId(),
		Warnings: []*sidecarv1.Warning{{Code: "spec.test", Field: "properties.x", Message: "a warning"}}}, nil
}

// Batch records the request and, once the script is empty, accepts every event except a track without a name.
func (s *scriptedServer) Batch(_ context.Context, r *sidecarv1.BatchRequest) (*sidecarv1.BatchResponse, error) {
	s.mu.Lock()
	s.batches = append(s.batches, r)
	err := pop(&s.batchScript)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp := &sidecarv1.BatchResponse{}
	for _, e := range r.GetEvents() {
		if t := e.GetTrack(); t != nil && t.GetEvent() == "" {
			resp.Results = append(resp.Results, &sidecarv1.BatchResult{Result: &sidecarv1.BatchResult_Rejected{
				Rejected: &sidecarv1.Rejection{Code: int32(codes.InvalidArgument), Reason: "event is required",
					FieldViolations: []*sidecarv1.FieldViolation{{Field: "event", Description: "required"}}}}})
			resp.Rejected++
			continue
		}
		resp.Results = append(resp.Results, &sidecarv1.BatchResult{
			Result: &sidecarv1.BatchResult_MessageId{MessageId: messageIDOf(e)}})
		resp.Accepted++
	}
	return resp, nil
}

// messageIDOf returns the message id of any batch event.
func messageIDOf(e *sidecarv1.BatchEvent) string {
	switch v := e.GetEvent().(type) {
	case *sidecarv1.BatchEvent_Track:
		return v.Track.GetMessageId()
	case *sidecarv1.BatchEvent_Identify:
		return v.Identify.GetMessageId()
	case *sidecarv1.BatchEvent_Page:
		return v.Page.GetMessageId()
	case *sidecarv1.BatchEvent_Screen:
		return v.Screen.GetMessageId()
	case *sidecarv1.BatchEvent_Group:
		return v.Group.GetMessageId()
	case *sidecarv1.BatchEvent_Alias:
		return v.Alias.GetMessageId()
	}
	return ""
}

// snapshot returns copies of what the server received so far.
func (s *scriptedServer) snapshot() ([]*sidecarv1.TrackRequest, []time.Time, []*sidecarv1.BatchRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*sidecarv1.TrackRequest(nil), s.tracks...), append([]time.Time(nil), s.trackTimes...),
		append([]*sidecarv1.BatchRequest(nil), s.batches...)
}

// serve starts srv on lis in a real gRPC server that the test stops at cleanup.
func serve(t *testing.T, lis net.Listener, srv sidecarv1.SidecarServiceServer) {
	t.Helper()
	gs := grpc.NewServer()
	sidecarv1.RegisterSidecarServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
}

// startTCP serves srv on a free loopback port and returns a client connected to it.
func startTCP(t *testing.T, srv sidecarv1.SidecarServiceServer, opts ...Option) *Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, lis, srv)
	c, err := New(append([]Option{WithAddress(lis.Addr().String())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// unavailable is UNAVAILABLE with no details.
func unavailable() error { return status.Error(codes.Unavailable, "shutting down") }

// exhausted is RESOURCE_EXHAUSTED with a RetryInfo asking for delay.
func exhausted(t *testing.T, delay time.Duration) error {
	t.Helper()
	st, err := status.New(codes.ResourceExhausted, "spool full").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// badRequest is INVALID_ARGUMENT with one BadRequest field violation.
func badRequest(t *testing.T, field, description string) error {
	t.Helper()
	st, err := status.New(codes.InvalidArgument, "event rejected").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: description}}})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}
