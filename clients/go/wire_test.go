package sidecar

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	sidecarv1 "github.com/segment-sidecar/segment-sidecar/clients/go/gen/segment/sidecar/v1"
)

// everyKind is one event of each type, with every kind of object field (JSON map, Struct, raw JSON, none).
func everyKind(t *testing.T) []Event {
	t.Helper()
	st, err := structpb.NewStruct(map[string]any{"plan": "pro", "seats": 3})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 3, 10, 4, 5, 123456789, time.UTC)
	props := map[string]any{"campaign_id": "cmp_1", "link_count": 3, "first_open": true, "ratio": 0.25,
		"nested": map[string]any{"tags": []any{"a", "<b>"}}}
	return []Event{
		Track{WriteKey: "wk", Region: RegionEU, UserID: "u1", AnonymousID: "a1", Timestamp: at, Event: "Email Opened",
			Properties: props, Context: map[string]any{"ip": "10.0.0.1"}, Integrations: map[string]any{"All": false}},
		Identify{WriteKey: "wk", UserID: "u1", MessageID: "own-id", Traits: st, Context: json.RawMessage(`{"a":1}`)},
		Page{WriteKey: "wk", UserID: "u1", Name: "Home", Category: "Docs", Properties: props},
		Screen{WriteKey: "wk", AnonymousID: "a2", Name: "Settings", Integrations: st},
		Group{WriteKey: "wk", Region: RegionUS, UserID: "u1", GroupID: "g1", Traits: map[string]any{"name": "ACME"}},
		Alias{WriteKey: "wk", UserID: "u1", PreviousID: "a1", Timestamp: at},
		Track{WriteKey: "wk", UserID: "u2", Event: "Nothing Else"},
	}
}

// TestEncodedBatchDecodesToTheBatchRequestOfTheMessages proves that the bytes Batch and the Batcher build, an event
// at a time, decode to the same BatchRequest as one built from the generated messages and that they are the bytes
// proto.Marshal writes for it.
func TestEncodedBatchDecodesToTheBatchRequestOfTheMessages(t *testing.T) {
	events := everyKind(t)
	batch, ids, err := batchRequest(events)
	if err != nil {
		t.Fatal(err)
	}
	want := &sidecarv1.BatchRequest{}
	for i, e := range events {
		be, err := e.toBatchEvent(ids[i])
		if err != nil {
			t.Fatal(err)
		}
		want.Events = append(want.Events, be)
	}
	got := &sidecarv1.BatchRequest{}
	if err := proto.Unmarshal(batch.wire, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("decoded %v, want %v", got, want)
	}
	if ids[1] != "own-id" {
		t.Errorf("an event's own message id was replaced: %q", ids[1])
	}
	marshalled, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(marshalled) != string(batch.wire) {
		t.Error("the encoded batch differs from proto.Marshal's bytes for the same request")
	}
}

// TestBatchAndBatcherSendTheEncodedEventsOverTheWire proves that a real gRPC server receives, from Client.Batch and
// from a Batcher, exactly the events the generated messages describe, and that results map back to them.
func TestBatchAndBatcherSendTheEncodedEventsOverTheWire(t *testing.T) {
	srv := &scriptedServer{}
	c := startTCP(t, srv)
	ctx := context.Background()
	events := everyKind(t)
	results, err := c.Batch(ctx, events...)
	if err != nil {
		t.Fatal(err)
	}
	ch, onReport := reports()
	b := c.NewBatcher(BatcherOptions{MaxEvents: len(events), MaxDelay: time.Hour, OnReport: onReport})
	for _, e := range events {
		if _, err := b.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	report := next(t, ch)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, batches := srv.snapshot()
	if len(batches) != 2 {
		t.Fatalf("server got %d batches, want 2", len(batches))
	}
	for n, sent := range []struct {
		ids   []string
		batch *sidecarv1.BatchRequest
	}{{idsOf(results), batches[0]}, {report.MessageIDs, batches[1]}} {
		if len(sent.batch.Events) != len(events) {
			t.Fatalf("batch %d: %d events arrived, want %d", n, len(sent.batch.Events), len(events))
		}
		for i, e := range events {
			want, err := e.toBatchEvent(sent.ids[i])
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(sent.batch.Events[i], want) {
				t.Errorf("batch %d event %d arrived as %v, want %v", n, i, sent.batch.Events[i], want)
			}
		}
	}
	if len(report.Results) != len(events) || report.Results[6].MessageID != report.MessageIDs[6] {
		t.Errorf("report = %+v", report)
	}
}

func idsOf(results []BatchResult) []string {
	ids := make([]string, len(results))
	for i, r := range results {
		ids[i] = r.MessageID
	}
	return ids
}

// TestEncodingATrackEventAllocatesLittle proves the Batcher's per-event encoding of a track event with ten
// properties makes at most 8 allocations (the request messages, the JSON and the entry); json.Marshal and the
// generated messages took 25 before, the reflection and sorting that were most of an event's CPU.
func TestEncodingATrackEventAllocatesLittle(t *testing.T) {
	props := map[string]any{"campaign_id": "cmp_2026_11_spring", "email_id": "em_000000123456",
		"email_subject": "Spring sale", "list_id": "lst_42", "link_count": 3, "opened_on": "mobile",
		"first_open": true, "send_hour": 9, "template": "promo-v2", "variant": "b"}
	e := Track{WriteKey: "wk", UserID: "user-000001", Event: "Email Opened", Properties: props}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := appendBatchEvent(nil, e, "0190a0b0-0000-7000-8000-000000000000"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 8 {
		t.Fatalf("encoding one track event made %v allocations, want at most 8", allocs)
	}
}
