package chat

import (
	"context"
	"testing"
)

// TestFeed: every subscriber gets what is published, a subscriber that
// does not read loses only what overflows its buffer (Publish never
// blocks), and a subscription ends with its context.
func TestFeed(t *testing.T) {
	f := NewFeed[int](2)
	ctx, cancel := context.WithCancel(context.Background())
	fast, slow := f.Subscribe(ctx), f.Subscribe(ctx)
	for i := range 5 {
		f.Publish(i)
		if got := <-fast; got != i {
			t.Fatalf("the reading subscriber got %d, want %d", got, i)
		}
	}
	if a, b := <-slow, <-slow; a != 0 || b != 1 {
		t.Errorf("the subscriber that did not read kept %d, %d; want the first two", a, b)
	}
	cancel()
	for range slow {
	}
	if _, open := <-fast; open {
		t.Error("a subscription outlived its context")
	}
}
