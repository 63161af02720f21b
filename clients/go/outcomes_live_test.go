package sidecar

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// liveKey is the write key of the live outcome test; the watch follows only its records.
const liveKey = "live-outcomes-key-go"

// sendTracks tracks n events with new message ids and returns the ids.
func sendTracks(ctx context.Context, t *testing.T, c *Client, n int, prefix string) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		r, err := c.Track(ctx, Track{WriteKey: liveKey, UserID: "u-live", Event: "Outcome Watched",
			MessageID: fmt.Sprintf("%s-%s", prefix, newMessageID())})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.MessageID)
	}
	return ids
}

// TestWatchOutcomesAgainstARealSidecar proves, against a real sidecar, that a watch closed by its caller resumes
// from its last cursor, that a watch resumes by itself across a SIGKILL and restart of the sidecar, and that every
// event's DELIVERED record arrives exactly once.
func TestWatchOutcomesAgainstARealSidecar(t *testing.T) {
	info := startHarness(t, "--outcomes")
	c, err := New(WithAddress(info.SidecarAddress))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := c.GetMessageOutcome(ctx, "probe", ""); status.Code(err) == codes.Unimplemented {
		t.Skip("the sidecar does not implement the outcome API (GetMessageOutcome, WatchOutcomes)")
	}
	want := sendTracks(ctx, t, c, 10, "before")
	filter := WatchOptions{WriteKeys: []string{liveKey}, Kinds: []OutcomeKind{OutcomeDelivered}}
	var got []*Outcome
	for o, err := range c.WatchOutcomes(ctx, filter) {
		if err != nil {
			t.Fatal(err)
		}
		if got = append(got, o); len(got) == 4 {
			break // the caller closes the stream
		}
	}
	resume := filter
	resume.AfterCursor = got[3].GetCursor()
	restarted := false
	var sentinel string
	for o, err := range c.WatchOutcomes(ctx, resume) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, o)
		if len(got) == 6 && !restarted {
			restarted = true
			resp, err := http.Post(info.RestartURL, "application/json", nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("restart: %v %v", resp, err)
			}
			_ = resp.Body.Close()
			want = append(want, sendTracks(ctx, t, c, 10, "after")...)
			sentinel = sendTracks(ctx, t, c, 1, "sentinel")[0]
			want = append(want, sentinel)
		}
		if sentinel != "" && o.GetMessageId() == sentinel {
			break
		}
	}
	seen := map[string]int{}
	for _, o := range got {
		seen[o.GetMessageId()]++
		if o.GetKind() != OutcomeDelivered {
			t.Errorf("record %v is not DELIVERED", o)
		}
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Errorf("%s arrived %d times", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct records, want %d", len(seen), len(want))
	}
	// The same records again from the fourth one's cursor: a resume sees exactly what followed it, in order.
	var again []string
	for o, err := range c.WatchOutcomes(ctx, resume) {
		if err != nil {
			t.Fatal(err)
		}
		if again = append(again, o.GetMessageId()); o.GetMessageId() == sentinel {
			break
		}
	}
	var tail []string
	for _, o := range got[4:] {
		tail = append(tail, o.GetMessageId())
	}
	if !slices.Equal(again, tail) {
		t.Errorf("resumed %v, want %v", again, tail)
	}
}
