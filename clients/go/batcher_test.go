package sidecar

import (
	"context"
	"errors"
	"testing"
	"time"
)

// reports collects a Batcher's reports on a channel, so tests wait on them instead of sleeping.
func reports() (chan BatchReport, func(BatchReport)) {
	ch := make(chan BatchReport, 100)
	return ch, func(r BatchReport) { ch <- r }
}

// next waits up to 5 s for a report.
func next(t *testing.T, ch chan BatchReport) BatchReport {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no batch was sent within 5 s")
		return BatchReport{}
	}
}

// TestBatcherSendsFullBatchesAndCloseSendsTheRest proves the count bound and that Close flushes.
func TestBatcherSendsFullBatchesAndCloseSendsTheRest(t *testing.T) {
	srv := &scriptedServer{}
	c := startTCP(t, srv)
	ch, onReport := reports()
	b := c.NewBatcher(BatcherOptions{MaxEvents: 3, MaxDelay: time.Hour, OnReport: onReport})
	ctx := context.Background()
	var ids []string
	for range 7 {
		id, err := b.Add(ctx, Track{WriteKey: "wk", UserID: "u", Event: "E"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if r := next(t, ch); len(r.MessageIDs) != 3 || r.Err != nil {
		t.Fatalf("first report = %+v", r)
	}
	if r := next(t, ch); len(r.MessageIDs) != 3 || r.Err != nil {
		t.Fatalf("second report = %+v", r)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r := next(t, ch)
	if len(r.Results) != 1 || r.Results[0].MessageID != ids[6] || r.Results[0].Err != nil {
		t.Fatalf("last report = %+v", r)
	}
	_, _, batches := srv.snapshot()
	if len(batches) != 3 {
		t.Fatalf("server got %d batches, want 3", len(batches))
	}
	if messageIDOf(batches[0].Events[0]) != ids[0] {
		t.Error("batches were not sent in order")
	}
}

// TestBatcherSendsAfterMaxDelay proves the time bound: one event goes out without a Flush.
func TestBatcherSendsAfterMaxDelay(t *testing.T) {
	srv := &scriptedServer{}
	c := startTCP(t, srv)
	ch, onReport := reports()
	b := c.NewBatcher(BatcherOptions{MaxEvents: 100, MaxDelay: 20 * time.Millisecond, OnReport: onReport})
	defer b.Close(context.Background())

	id, err := b.Add(context.Background(), Identify{WriteKey: "wk", UserID: "u", Traits: map[string]any{"a": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if r := next(t, ch); len(r.MessageIDs) != 1 || r.MessageIDs[0] != id {
		t.Fatalf("report = %+v", r)
	}
}

// TestBatcherSendsOnByteBound proves the byte bound cuts a batch before the count bound.
func TestBatcherSendsOnByteBound(t *testing.T) {
	srv := &scriptedServer{}
	c := startTCP(t, srv)
	ch, onReport := reports()
	b := c.NewBatcher(BatcherOptions{MaxEvents: 1000, MaxBytes: 1, MaxDelay: time.Hour, OnReport: onReport})
	defer b.Close(context.Background())

	if _, err := b.Add(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"}); err != nil {
		t.Fatal(err)
	}
	if r := next(t, ch); len(r.MessageIDs) != 1 {
		t.Fatalf("report = %+v", r)
	}
}

// TestBatcherFlushWaitsAndReportsRejections proves Flush returns after the send and rejections reach OnReport.
func TestBatcherFlushWaitsAndReportsRejections(t *testing.T) {
	srv := &scriptedServer{}
	c := startTCP(t, srv)
	ch, onReport := reports()
	b := c.NewBatcher(BatcherOptions{MaxDelay: time.Hour, OnReport: onReport})
	defer b.Close(context.Background())
	ctx := context.Background()

	if _, err := b.Add(ctx, Track{WriteKey: "wk", UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		var invalid *InvalidEventError
		if !errors.As(r.Results[0].Err, &invalid) || invalid.Violations[0].Field != "event" {
			t.Fatalf("result = %+v", r.Results[0])
		}
	default:
		t.Fatal("Flush returned before the batch was reported")
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("flush with nothing buffered: %v", err)
	}
}

// TestBatcherCloseIsIdempotentAndRefusesLaterEvents proves the lifecycle: Close twice, Add after Close.
func TestBatcherCloseIsIdempotentAndRefusesLaterEvents(t *testing.T) {
	c := startTCP(t, &scriptedServer{})
	b := c.NewBatcher(BatcherOptions{})
	ctx := context.Background()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Add(ctx, Track{WriteKey: "wk", UserID: "u", Event: "E"}); !errors.Is(err, errClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if err := b.Flush(ctx); !errors.Is(err, errClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
}

// TestBatcherReportsWholeCallFailures proves a batch that fails after retries is reported with its error.
func TestBatcherReportsWholeCallFailures(t *testing.T) {
	srv := &scriptedServer{batchScript: []error{unavailable(), unavailable()}}
	c := startTCP(t, srv, WithRetryPolicy(RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond}))
	ch, onReport := reports()
	b := c.NewBatcher(BatcherOptions{MaxEvents: 1, OnReport: onReport})
	defer b.Close(context.Background())

	if _, err := b.Add(context.Background(), Track{WriteKey: "wk", UserID: "u", Event: "E"}); err != nil {
		t.Fatal(err)
	}
	if r := next(t, ch); r.Err == nil || r.Results != nil || len(r.MessageIDs) != 1 {
		t.Fatalf("report = %+v", r)
	}
}
