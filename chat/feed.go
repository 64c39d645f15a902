package chat

import (
	"context"
	"sync"
)

// Feed fans events out to subscribers: the chat history's changes, and
// those of the applications beside it (calls, files). Publish never blocks:
// a subscriber more than its buffer behind misses the excess, so the
// application's own list stays the authority and a client that reconnects
// reads it again. The zero Feed is not ready; use NewFeed.
type Feed[T any] struct {
	buf  int
	mu   sync.Mutex
	subs map[chan T]struct{}
}

// NewFeed returns a feed whose subscribers each buffer buf events.
func NewFeed[T any](buf int) *Feed[T] {
	return &Feed[T]{buf: buf, subs: map[chan T]struct{}{}}
}

// Subscribe returns a channel of events until ctx ends; it is closed then.
func (f *Feed[T]) Subscribe(ctx context.Context) <-chan T {
	ch := make(chan T, f.buf)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
		close(ch)
	}()
	return ch
}

// Publish hands e to every subscriber with room for it.
func (f *Feed[T]) Publish(e T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- e:
		default:
		}
	}
}
