package sidecar_test

import (
	"context"
	"errors"
	"log"

	sidecar "github.com/segment-sidecar/segment-sidecar/clients/go"
)

// ExampleClient_Track sends one track call and reports a rejected event's field violations.
func ExampleClient_Track() {
	client, err := sidecar.New() // SIDECAR_ADDRESS, else 127.0.0.1:50051
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	_, err = client.Track(context.Background(), sidecar.Track{
		WriteKey:   "customer-write-key",
		Region:     sidecar.RegionUS,
		UserID:     "user-42",
		Event:      "Email Opened",
		Properties: map[string]any{"email_id": "e-1", "opens": 3},
	})
	var invalid *sidecar.InvalidEventError
	if errors.As(err, &invalid) {
		log.Printf("rejected: %v", invalid.Violations)
	}
}

// ExampleBatcher collects events from a high-volume producer into Batch calls.
func ExampleBatcher() {
	client, err := sidecar.New()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	batcher := client.NewBatcher(sidecar.BatcherOptions{
		OnReport: func(r sidecar.BatchReport) {
			if r.Err != nil {
				log.Printf("batch of %d events failed: %v", len(r.MessageIDs), r.Err)
			}
		},
	})
	defer batcher.Close(context.Background()) // sends what is still buffered

	for i := range 1000 {
		_, _ = batcher.Add(context.Background(), sidecar.Identify{
			WriteKey: "customer-write-key", UserID: "user-42", Traits: map[string]any{"logins": i},
		})
	}
}
