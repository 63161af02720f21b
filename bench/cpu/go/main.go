// Command partner is the CPU benchmark's Go partner (bench/cpu_per_event.py): it sends BENCH_EVENTS track events
// through the Go client's Batcher to the sidecar at SIDECAR_ADDRESS, flushes, and prints its own CPU time.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"

	sidecar "github.com/segment-sidecar/segment-sidecar/clients/go"
)

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		log.Fatal(err)
	}
	seconds := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime)
}

func main() {
	events, err := strconv.Atoi(os.Getenv("BENCH_EVENTS"))
	if err != nil {
		log.Fatal("BENCH_EVENTS: ", err)
	}
	writeKey := os.Getenv("BENCH_WRITE_KEY")
	client, err := sidecar.New()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		// A pprof CPU profile of the measured part, for `go tool pprof` (bench/README.md); off in the benchmark.
		f, err := os.Create(path)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	started := cpuSeconds()
	batcher := client.NewBatcher(sidecar.BatcherOptions{MaxEvents: 1000})
	for i := range events {
		_, err := batcher.Add(ctx, sidecar.Track{
			WriteKey: writeKey,
			UserID:   fmt.Sprintf("user-%06d", i%100000),
			Event:    "Email Opened",
			Properties: map[string]any{
				"campaign_id": "cmp_2026_11_spring", "email_id": "em_000000123456", "email_subject": "Spring sale",
				"list_id": "lst_42", "link_count": 3, "opened_on": "mobile", "first_open": true, "send_hour": 9,
				"template": "promo-v2", "variant": "b",
			},
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := batcher.Close(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("cpu_seconds=%f\n", cpuSeconds()-started)
}
