package sidecar

import (
	"context"
	"sync"
	"time"
)

// BatcherOptions bounds a Batcher's batches in size and time. Zero values take the defaults.
type BatcherOptions struct {
	// MaxEvents sends a batch once it holds this many events (default 500, at most MaxBatchEvents).
	MaxEvents int
	// MaxBytes sends a batch once its encoded events reach this size (default 4 MiB; the sidecar's cap is 16 MiB).
	MaxBytes int
	// MaxDelay sends a batch at most this long after its first event was added (default 200 ms).
	MaxDelay time.Duration
	// MaxPending is how many full batches may wait for the sender before Add blocks (default 4).
	MaxPending int
	// OnReport, when set, receives the outcome of every Batch call, from the Batcher's sending goroutine. It must
	// not call the Batcher's Add, Flush or Close.
	OnReport func(BatchReport)
}

// BatchReport is the outcome of one Batch call a Batcher made.
type BatchReport struct {
	// MessageIDs are the ids of the events sent, in order.
	MessageIDs []string
	// Results has one entry per event when the call succeeded; rejected events carry an *InvalidEventError.
	Results []BatchResult
	// Err is set when the whole call failed, after retries with the same message ids until the client's deadline.
	Err error
}

// Batcher collects events from many goroutines and sends them with the Batch RPC, in batches bounded by count,
// bytes and delay. One goroutine sends, in order; when it falls behind, Add blocks (back-pressure) rather than
// buffer without bound. Close sends what is left.
type Batcher struct {
	client *Client
	opts   BatcherOptions

	mu       sync.Mutex
	wire     []byte   // the buffered events, encoded as a BatchRequest
	ids      []string // their message ids, one per event
	lastSize int      // the previous batch's size in bytes, to size the next buffer once
	gen      uint64   // counts cut batches, so a late timer does not cut a newer one
	timer    *time.Timer
	closed   bool
	inflight sync.WaitGroup // Adds and Flushes between cutting a batch and queueing it

	queue    chan pendingBatch
	sendCtx  context.Context
	stopSend context.CancelFunc
	done     chan struct{}
	closeMu  sync.Mutex
}

// pendingBatch is a cut batch on its way to the sender; done, when set, is closed once it has been sent.
type pendingBatch struct {
	req  *encodedBatch
	ids  []string
	done chan struct{}
}

// NewBatcher starts a Batcher that sends through c. Close it to send the last events and stop its goroutine.
func (c *Client) NewBatcher(opts BatcherOptions) *Batcher {
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 500
	}
	opts.MaxEvents = min(opts.MaxEvents, MaxBatchEvents)
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 4 << 20
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 200 * time.Millisecond
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 4
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{
		client: c, opts: opts,
		queue: make(chan pendingBatch, opts.MaxPending), sendCtx: ctx, stopSend: cancel, done: make(chan struct{}),
	}
	go b.send()
	return b
}

// Add queues an event and returns the message id it will be sent with. It blocks only while the sender is
// MaxPending batches behind, and then at most until ctx is done.
func (b *Batcher) Add(ctx context.Context, e Event) (string, error) {
	id := idFor(e)
	// Encoded once, here, outside the lock; the batch's bytes are these entries end to end.
	entry, err := appendBatchEvent(nil, e, id)
	if err != nil {
		return id, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return id, errClosed
	}
	if len(b.ids) == 0 {
		gen := b.gen
		b.timer = time.AfterFunc(b.opts.MaxDelay, func() { b.onTimer(gen) })
		// Sized like the previous batch, so a steady stream grows no buffer.
		b.wire = make([]byte, 0, min(b.lastSize, b.opts.MaxBytes)+len(entry))
		b.ids = make([]string, 0, b.opts.MaxEvents)
	}
	b.wire = append(b.wire, entry...)
	b.ids = append(b.ids, id)
	if len(b.ids) < b.opts.MaxEvents && len(b.wire) < b.opts.MaxBytes {
		b.mu.Unlock()
		return id, nil
	}
	p := b.cutLocked(nil)
	b.mu.Unlock()
	defer b.inflight.Done()
	return id, b.enqueue(ctx, p)
}

// onTimer cuts the batch whose first event started the timer, unless it was cut already.
func (b *Batcher) onTimer(gen uint64) {
	b.mu.Lock()
	if b.gen != gen || len(b.ids) == 0 {
		b.mu.Unlock()
		return
	}
	p := b.cutLocked(nil)
	b.mu.Unlock()
	defer b.inflight.Done()
	_ = b.enqueue(b.sendCtx, p)
}

// cutLocked takes the buffered events as a batch and counts the caller as in flight until it has queued it.
// Called with mu held.
func (b *Batcher) cutLocked(done chan struct{}) pendingBatch {
	p := pendingBatch{ids: b.ids, done: done}
	if len(b.ids) > 0 {
		p.req = &encodedBatch{wire: b.wire}
		b.lastSize = len(b.wire)
	}
	b.wire, b.ids = nil, nil
	b.gen++
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.inflight.Add(1)
	return p
}

// enqueue hands a batch to the sender, waiting for room until ctx is done.
func (b *Batcher) enqueue(ctx context.Context, p pendingBatch) error {
	select {
	case b.queue <- p:
		return nil
	case <-ctx.Done():
		if p.done != nil {
			close(p.done)
		}
		return ctx.Err()
	}
}

// Flush sends the events buffered so far and waits until they, and every batch queued before them, have been
// sent (see OnReport for their outcome).
func (b *Batcher) Flush(ctx context.Context) error {
	done := make(chan struct{})
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	p := b.cutLocked(done)
	b.mu.Unlock()
	err := b.enqueue(ctx, p)
	b.inflight.Done()
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close sends what is buffered, waits for the sender to finish and stops it. If ctx ends first, batches still
// being retried are abandoned and ctx's error is returned. Close is safe to call more than once.
func (b *Batcher) Close(ctx context.Context) error {
	b.closeMu.Lock()
	b.mu.Lock()
	first := !b.closed
	b.closed = true
	var p pendingBatch
	if first {
		p = b.cutLocked(nil)
	}
	b.mu.Unlock()
	if first {
		// The queue is closed only after every cut batch is in it, so no sender writes to a closed channel.
		err := b.enqueue(ctx, p)
		b.inflight.Done()
		if err != nil {
			b.stopSend()
			b.inflight.Wait()
		} else {
			b.inflight.Wait()
		}
		close(b.queue)
	}
	b.closeMu.Unlock()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.stopSend()
		return ctx.Err()
	}
}

// send is the Batcher's one sending goroutine.
func (b *Batcher) send() {
	defer close(b.done)
	defer b.stopSend()
	for p := range b.queue {
		if p.req != nil {
			resp, err := b.client.sendBatch(b.sendCtx, p.req)
			// The per-event results are built only for a caller who asked for them.
			if b.opts.OnReport != nil {
				var results []BatchResult
				if err == nil {
					results, err = batchResults(resp, p.ids)
				}
				b.opts.OnReport(BatchReport{MessageIDs: p.ids, Results: results, Err: err})
			}
		}
		if p.done != nil {
			close(p.done)
		}
	}
}
