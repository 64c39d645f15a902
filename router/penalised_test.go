package router

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// TestQueuedForPenalisedNeighbourIsRoutedRound: A reaches D through F
// (A–F–D, 2 units) and through H (A–H–G–D, 3 units). A's link to F is
// stalled: the first bundle A sends F never leaves (stallLink), so the
// messages A submits for D sit in its store queued for F, the cheaper
// route, and are not sent. F then floods A with junk past A's ingress
// limit (burst 5, 1/s) and is judged flooding while it stays up. The
// bundles already queued for F must go through H instead (reroute moves
// the queue of a neighbour that is up but penalised, not only of one that
// is down), reach D, and each reach D's application exactly once.
func TestQueuedForPenalisedNeighbourIsRoutedRound(t *testing.T) {
	fwd := newForwardedBy()
	var stall *stallLink
	x, _, fEnd := floodNet(t, func(c *Config) { c.Events = fwd.event }, func(a, f *testNode) transports.Link {
		la, fEnd := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: f.addr, Authenticated: true})
		stall = &stallLink{Link: la, stalled: make(chan struct{})}
		a.r.AddLink(stall)
		f.r.AddLink(fEnd) // F's end: the test floods A through it
		return fEnd
	})
	a, f, h, d := x.nodes['A'], x.nodes['F'], x.nodes['H'], x.nodes['D']

	const count = 5
	want := map[bundle.ID]string{}
	for i := range count {
		b := dataBundle(t, d.addr, fmt.Sprintf("queued %d", i))
		if err := a.r.Submit(b); err != nil {
			t.Fatal(err)
		}
		want[b.ID] = string(b.Payload)
	}
	select {
	case <-stall.stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("A never tried to send F a bundle")
	}
	queuedFor := func(hop bundle.Addr) int {
		recs, err := a.st.ForNextHop(hop, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, rec := range recs {
			if _, ok := want[rec.ID]; ok {
				n++
			}
		}
		return n
	}
	if n := queuedFor(f.addr); n != count {
		t.Fatalf("before the flood A holds %d of the %d messages queued for F, want all (F is the cheaper route)", n, count)
	}
	if n := stall.sends(); n != 1 {
		t.Fatalf("A tried to send F %d bundles over the stalled link, want 1 (the rest wait queued)", n)
	}

	// F floods: 40 junk bundles at one instant; A takes its burst of 5
	// and judges F flooding. F stays up.
	for range 40 {
		if err := fEnd.Send(context.Background(), mustMarshal(t, dataBundle(t, bundle.Addr{'X'}, "junk"))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "A judges F flooding", func() bool { return a.r.table.penalised(f.addr) })
	if !a.r.isUp(f.addr) {
		t.Fatal("F went down: the test is about a neighbour that stays up")
	}

	// Every message queued for F reaches D, through H.
	got := map[bundle.ID]int{}
	deadline := time.After(10 * time.Second)
	for len(got) < count {
		select {
		case b := <-d.arrive:
			if _, ok := want[b.ID]; !ok {
				t.Fatalf("D was delivered %q, not one of the queued messages", b.Payload)
			}
			got[b.ID]++
		case <-deadline:
			t.Fatalf("after F was judged flooding D got %d of the %d messages queued at A for F; A still holds %d queued for F (up, penalised) and %d for H",
				len(got), count, queuedFor(f.addr), queuedFor(h.addr))
		}
	}
	eventually(t, "H takes every message into custody from A", func() bool { return fwd.took(h.addr, want) })
	for id, text := range want {
		if by := fwd.neighbours(id); len(by) != 1 || by[0] != h.addr {
			t.Errorf("%q was taken into custody from A by %x, want by H alone", text, by)
		}
	}
	if n := stall.sends(); n != 1 {
		t.Errorf("A tried to send F %d bundles, want only the one that stalled before the flood", n)
	}

	// Once A has heard D's receipts it holds no copy of any of them (no
	// spare could go another way later): then D's count is final.
	eventually(t, "A learns the messages were delivered and drops what it held of them", func() bool {
		for id := range want {
			if _, ok := held(a, id); ok {
				return false
			}
		}
		return true
	})
	delivered := deliveries(d)
	for id, text := range want {
		if delivered[id] != 1 {
			t.Errorf("D's application was delivered %q %d times, want once", text, delivered[id])
		}
	}
}

// stallLink is A's end of its link to F, stalled for data: the first data
// bundle sent over it blocks (stalled is closed) until the router stops,
// and never reaches F, so the sender's pass over F's queue goes no
// further. Everything else (announces, summaries, custody acks) passes.
type stallLink struct {
	transports.Link
	stalled chan struct{}

	mu   sync.Mutex
	data int
}

func (l *stallLink) sends() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.data
}

func (l *stallLink) Send(ctx context.Context, f []byte) error {
	if b, err := bundle.Unmarshal(f); err == nil && b.Kind == bundle.KindData {
		l.mu.Lock()
		l.data++
		if l.data == 1 {
			close(l.stalled)
		}
		l.mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	return l.Link.Send(ctx, f)
}

// forwardedBy records which neighbours took each locally originated bundle
// into custody (Config.Events).
type forwardedBy struct {
	mu      sync.Mutex
	by      map[bundle.ID][]bundle.Addr
	changed chan struct{} // closed and replaced at every event
}

func newForwardedBy() *forwardedBy {
	return &forwardedBy{by: map[bundle.ID][]bundle.Addr{}, changed: make(chan struct{})}
}

func (e *forwardedBy) event(ev Event) {
	if ev.Kind != "forwarded" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.by[ev.ID] = append(e.by[ev.ID], ev.Neighbour)
	close(e.changed)
	e.changed = make(chan struct{})
}

// wait waits up to d until bundle id has been taken into custody n times,
// and reports whether it was.
func (e *forwardedBy) wait(id bundle.ID, n int, d time.Duration) bool {
	timeout := time.After(d)
	for {
		e.mu.Lock()
		got, changed := len(e.by[id]), e.changed
		e.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-changed:
		case <-timeout:
			return false
		}
	}
}

func (e *forwardedBy) neighbours(id bundle.ID) []bundle.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]bundle.Addr(nil), e.by[id]...)
}

// took reports whether n took every bundle of ids into custody.
func (e *forwardedBy) took(n bundle.Addr, ids map[bundle.ID]string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range ids {
		found := false
		for _, a := range e.by[id] {
			found = found || a == n
		}
		if !found {
			return false
		}
	}
	return true
}
