package router

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/transports"
)

// TestAckAfterQueueReadDoesNotResendFromStaleRecord reproduces, without
// timing luck, the interleaving the neighbour's ack generation (ackGen,
// settled, ackedSince) guards against: a send pass reads the queue
// (Store.ForNextHop), and before it looks at a record that was in flight,
// the custody ack for it is applied (onAck releases the flight and parks
// the originator's hedge). Without the guard the pass finds no flight and
// sends the bundle again from its stale record, granting the whole budget
// a second time; the custody ack of that second copy then takes the budget
// from the one copy left, and the hedge is deleted.
//
// A sends a message for D to B (a live route A-B-D), keeping one copy
// back. B's custody ack is held back on A's link; the test applies it
// itself, through onAck, from the clock the next send pass reads right
// after the queue (sendPending reads cfg.Now first just after
// ForNextHop). A must send the bundle to B once, grant its copies once,
// report it forwarded once and keep its hedge, and D must get the message
// once.
func TestAckAfterQueueReadDoesNotResendFromStaleRecord(t *testing.T) {
	msg := dataBundle(t, bundle.Addr{'D'}, "once, with a spare")
	clock := &passClock{}
	fwd := newForwardedBy()
	a := newTunedNode(t, 'A', func(c *Config) {
		c.Now = clock.now
		c.Events = fwd.event
		c.RetryMin = time.Minute // no custody timeout resends during the test
	})
	b := newTestNode(t, 'B')
	// D keeps its delivery receipt to itself: a receipt coming back would
	// clear A's hedge as well, and hide whether the second ack did.
	d := newTunedNode(t, 'D', func(c *Config) { c.SummaryDelay = time.Hour })
	connect(b, d)

	la, lb := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr, Authenticated: true})
	link := &ackHoldLink{Link: la, id: msg.ID, held: make(chan struct{})}
	a.r.AddLink(link)
	b.r.AddLink(lb)
	eventually(t, "A learns a live route to D through B", hasRoute(a, d.addr))

	if err := a.r.Submit(msg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-link.held:
	case <-time.After(10 * time.Second):
		t.Fatal("B never acknowledged the bundle to A")
	}
	waitArrival(t, d, "once, with a spare")
	a.r.mu.Lock()
	nb := a.r.nbrs[b.addr]
	a.r.mu.Unlock()
	budget, given := uint16(policy.DefaultCopies), uint16(policy.DefaultCopies-1) // one kept back
	nb.mu.Lock()
	f, inFlight := nb.inflight[msg.ID]
	var grant uint16
	if inFlight {
		grant = f.grant
	}
	nb.mu.Unlock()
	if !inFlight || grant != given {
		t.Fatalf("A's flight of the bundle to B: in flight %v with %d copies, want in flight with %d", inFlight, grant, given)
	}
	if rec, ok := held(a, msg.ID); !ok || rec.NextHop != b.addr || rec.Copies != budget {
		t.Fatalf("before the ack A holds %+v (held %v), want all %d copies queued for B", rec, ok, budget)
	}

	// The next send pass to B reads the queue (the bundle still listed for
	// B with all its copies), then the clock, and there the custody ack
	// lands. onAck wakes the sender, so another pass follows; before it
	// goes on (it would forget a flight no longer queued), B's ack of a
	// second copy, if that pass sent one, is let in, as when the sender is
	// slow to come round.
	fired, passDone := clock.arm(
		func() { a.r.onAck(nb, []bundle.ID{msg.ID}) },
		func() {
			if sent, _ := link.counts(); sent > 1 {
				fwd.wait(msg.ID, 2, 10*time.Second) // A applied B's custody ack of the second copy
			}
		})
	wake(nb.wake)
	for _, step := range []struct {
		c    <-chan struct{}
		what string
	}{
		{fired, "a send pass to B read the queue"},
		{passDone, "that send pass ended"},
	} {
		select {
		case <-step.c:
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting until %s", step.what)
		}
	}

	// A marker sent after those passes is acknowledged after anything they
	// sent: once A has applied its custody ack, B's ack of any other copy of
	// the bundle has been applied too.
	marker := dataBundle(t, d.addr, "marker")
	if err := a.r.Submit(marker); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, d, "marker")
	eventually(t, "A applied B's custody ack of the marker", func() bool { return copiesAt(a, marker.ID) == 1 })

	sent, grants := link.counts()
	if sent != 1 {
		t.Errorf("A sent the bundle to B %d times, want once: a custody ack applied after the send pass read the queue did not stop a resend from the stale record", sent)
	}
	if len(grants) != 1 || grants[0] != given {
		t.Errorf("A granted B copies of the bundle %d times (%v), want a single grant of %d", len(grants), grants, given)
	}
	if n := len(fwd.neighbours(msg.ID)); n != 1 {
		t.Errorf("A reported the bundle forwarded %d times, want once", n)
	}
	switch rec, ok := held(a, msg.ID); {
	case !ok:
		t.Errorf("A no longer holds its spare copy of the bundle: the custody ack of the second copy took it (the message is lost if B's copy is)")
	case rec.Copies != 1 || rec.NextHop != ParkedHop():
		t.Errorf("A holds %d copies of the bundle queued for %x, want its spare copy: 1, parked", rec.Copies, rec.NextHop[:1])
	}
	if got := deliveries(d)[msg.ID]; got != 1 {
		t.Errorf("D was delivered the message %d times, want once", got)
	}
}

// passClock is a router's clock (Config.Now) that runs actions inside send
// passes. Armed, the first time sendPending reads the clock (right after
// it read the queue from the store) action runs there and fired is closed;
// the next time (the following pass, the one before over), next runs and
// passDone is closed. It relies on sendPending reading the clock first
// just after the queue: were that read moved ahead of ForNextHop, the ack
// would land before the queue read and the test would no longer reproduce
// anything (it fails without the fix only as long as that holds).
type passClock struct {
	mu           sync.Mutex
	state        int // 0 idle, 1 armed, 2 running action, 3 waiting for the next pass, 4 running next
	action, next func()
	fired, done  chan struct{}
}

func (c *passClock) arm(action, next func()) (fired, passDone <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.action, c.next, c.state = action, next, 1
	c.fired, c.done = make(chan struct{}), make(chan struct{})
	return c.fired, c.done
}

func (c *passClock) now() time.Time {
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	if (state == 1 || state == 3) && calledBySendPending() {
		c.mu.Lock()
		switch c.state {
		case 1:
			c.state = 2
			c.mu.Unlock()
			c.action() // onAck reads the clock too: state 2 ignores it
			c.mu.Lock()
			c.state = 3
			close(c.fired)
		case 3:
			c.state = 4
			c.mu.Unlock()
			c.next()
			c.mu.Lock()
			c.state = 0
			close(c.done)
		}
		c.mu.Unlock()
	}
	return time.Now()
}

// calledBySendPending reports whether the clock was read by sendPending
// itself (not by something it calls).
func calledBySendPending() bool {
	pc := make([]uintptr, 1)
	// Skip runtime.Callers, this function, passClock.now: the frame
	// after is whoever called Config.Now.
	if runtime.Callers(3, pc) == 0 {
		return false
	}
	fr, _ := runtime.CallersFrames(pc).Next()
	return strings.HasSuffix(fr.Function, ".(*Router).sendPending")
}

// ackHoldLink is A's end of the link to B. It holds back (drops) the first
// custody ack of bundle id, which the test applies itself, and counts the
// copies of id sent and the grants of copies announced for it.
type ackHoldLink struct {
	transports.Link
	id   bundle.ID
	held chan struct{} // closed when the first ack of id was held back

	mu      sync.Mutex
	holding bool
	sent    int
	grants  []uint16
}

func (l *ackHoldLink) counts() (sent int, grants []uint16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent, append([]uint16(nil), l.grants...)
}

func (l *ackHoldLink) Send(ctx context.Context, f []byte) error {
	if b, err := bundle.Unmarshal(f); err == nil {
		l.mu.Lock()
		switch {
		case b.Kind == bundle.KindData && b.ID == l.id:
			l.sent++
		case b.Kind == bundle.KindSummary:
			if s, err := bundle.UnmarshalSummary(b.Payload); err == nil {
				for _, g := range s.Grants {
					if g.ID == l.id {
						l.grants = append(l.grants, g.Copies)
					}
				}
			}
		}
		l.mu.Unlock()
	}
	return l.Link.Send(ctx, f)
}

func (l *ackHoldLink) Recv(ctx context.Context) ([]byte, error) {
	for {
		f, err := l.Link.Recv(ctx)
		if err != nil {
			return f, err
		}
		b, err := bundle.Unmarshal(f)
		if err != nil || b.Kind != bundle.KindCustodyAck {
			return f, nil
		}
		ids, err := bundle.UnmarshalCustodyAck(b.Payload)
		if err != nil {
			return f, nil
		}
		l.mu.Lock()
		hold := !l.holding && slices.Contains(ids, l.id)
		l.holding = l.holding || hold
		l.mu.Unlock()
		if !hold {
			return f, nil
		}
		close(l.held)
		var rest []bundle.ID
		for _, id := range ids {
			if id != l.id {
				rest = append(rest, id)
			}
		}
		if len(rest) == 0 {
			continue
		}
		if b.Payload, err = bundle.MarshalCustodyAck(rest); err != nil {
			return nil, err
		}
		return b.Marshal()
	}
}
