// Command dropin sends events with the unmodified github.com/segmentio/analytics-go/v3, configured only by its
// Endpoint (the host, with a region prefix such as http://127.0.0.1:PORT/eu).
//
// Input (env DROPIN_PLAN, JSON): {"host", "keys": [...], "perKey"}. Output: one JSON line on stdout,
// {"sent": [messageId...], "succeeded": n, "failed": [{"messageId", "reason"}]}.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"

	analytics "github.com/segmentio/analytics-go/v3"
)

type plan struct {
	Host   string   `json:"host"`
	Keys   []string `json:"keys"`
	PerKey int      `json:"perKey"`
}

type failure struct {
	MessageID string `json:"messageId"`
	Reason    string `json:"reason"`
}

type report struct {
	mu        sync.Mutex
	Sent      []string  `json:"sent"`
	Succeeded int       `json:"succeeded"`
	Failed    []failure `json:"failed"`
}

func (r *report) Success(m analytics.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Succeeded++
}

func (r *report) Failure(m analytics.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := ""
	switch v := m.(type) {
	case analytics.Track:
		id = v.MessageId
	case analytics.Identify:
		id = v.MessageId
	case analytics.Group:
		id = v.MessageId
	}
	r.Failed = append(r.Failed, failure{MessageID: id, Reason: err.Error()})
}

func main() {
	var p plan
	if err := json.Unmarshal([]byte(os.Getenv("DROPIN_PLAN")), &p); err != nil {
		fmt.Fprintln(os.Stderr, "DROPIN_PLAN:", err)
		os.Exit(2)
	}
	r := &report{Sent: []string{}, Failed: []failure{}}
	for _, key := range p.Keys {
		client, err := analytics.NewWithConfig(key, analytics.Config{Endpoint: p.Host, Callback: r})
		if err != nil {
			fmt.Fprintln(os.Stderr, "config:", err)
			os.Exit(2)
		}
		for i := 0; i < p.PerKey; i++ {
			id := fmt.Sprintf("go-%s-%d", key, i)
			user := fmt.Sprintf("user-%d", i%97)
			var msg analytics.Message
			switch i % 3 {
			case 0:
				msg = analytics.Track{MessageId: id, UserId: user, Event: "Email Opened",
					Properties: analytics.NewProperties().Set("i", i)}
			case 1:
				msg = analytics.Identify{MessageId: id, UserId: user,
					Traits: analytics.NewTraits().SetEmail(user + "@example.com")}
			default:
				msg = analytics.Group{MessageId: id, UserId: user, GroupId: fmt.Sprintf("group-%d", i%7),
					Traits: analytics.NewTraits().SetName("Acme")}
			}
			if err := client.Enqueue(msg); err != nil {
				fmt.Fprintln(os.Stderr, "enqueue:", err)
				os.Exit(1)
			}
			r.Sent = append(r.Sent, id)
		}
		if err := client.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close:", err)
			os.Exit(1)
		}
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
