package router

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// liar speaks for a node L by hand: it claims every destination at cost 0,
// takes custody of every bundle handed to it and drops it, and floods its
// neighbour with junk.
type liar struct {
	addr bundle.Addr
	l    transports.Link
	mu   sync.Mutex
	got  map[bundle.ID]bundle.Addr // data bundles swallowed, with their destination
}

func newLiar(t *testing.T, a *testNode, claims ...bundle.Addr) *liar {
	lr := &liar{addr: bundle.Addr{'L'}, got: map[bundle.ID]bundle.Addr{}}
	la, ll := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: lr.addr, Authenticated: true})
	lr.l = ll
	a.r.AddLink(la)
	routes := []bundle.Route{{Dest: lr.addr}}
	for _, c := range claims {
		routes = append(routes, bundle.Route{Dest: c, Hops: 1}) // the least an honest node claims for another (Hops 0 is passed over)
	}
	lr.control(t, a.addr, bundle.KindAnnounce, mustAnnounce(t, routes))
	go func() {
		for {
			f, err := ll.Recv(context.Background())
			if err != nil {
				return
			}
			x, err := bundle.Unmarshal(f)
			if err != nil || x.Kind != bundle.KindData {
				continue
			}
			lr.mu.Lock()
			lr.got[x.ID] = x.Dest
			lr.mu.Unlock()
			p, _ := bundle.MarshalCustodyAck([]bundle.ID{x.ID})
			lr.control(nil, a.addr, bundle.KindCustodyAck, p)
		}
	}()
	return lr
}

func mustAnnounce(t *testing.T, routes []bundle.Route) []byte {
	p, err := (&bundle.Announce{Seq: 1, Routes: routes}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (lr *liar) control(t *testing.T, to bundle.Addr, k bundle.Kind, payload []byte) {
	id, _ := bundle.NewID(rand.Reader)
	b := bundle.Bundle{Version: bundle.Version, Kind: k, Dest: to, ID: id, Lifetime: 60000, Payload: payload}
	raw, err := b.Marshal()
	if err == nil {
		err = lr.l.Send(context.Background(), raw)
	}
	if err != nil && t != nil {
		t.Fatal(err)
	}
}

// swallowed is how many distinct bundles for dest L was handed (a resend,
// when L's custody ack drowned in its own flood at A's ingress limit, is
// the same message again).
func (lr *liar) swallowed(dest bundle.Addr) int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	n := 0
	for _, d := range lr.got {
		if d == dest {
			n++
		}
	}
	return n
}

// TestLiarCannotCutOffTheRest: A reaches D through the honest relays B
// and C (3 units), and through L, which claims D at 1 (2 units: the least
// an honest node could claim) and swallows what it is given. A's first messages go to L, but A keeps a hedge of each: no
// delivery receipt comes back for them, so L's routes lose preference, the
// hedges go through B, and everything A writes reaches D exactly once.
// Later messages go through B directly. L's junk flood, started once it
// has the first messages (a flood alone would get it routed round at
// once: TestFloodingNeighbourIsRoutedRound), is held to A's ingress rate.
func TestLiarCannotCutOffTheRest(t *testing.T) {
	a := newTunedNode(t, 'A', func(c *Config) {
		c.ReceiptTimeout, c.ExpireInterval = 300*time.Millisecond, 50*time.Millisecond
		c.IngressRate, c.IngressBurst = 50, 20
	})
	b, c, d := newTestNode(t, 'B'), newTestNode(t, 'C'), newTestNode(t, 'D')
	connect(a, b)
	connect(b, c)
	connect(c, d)
	eventually(t, "A hears of D through B", liveVia(a, d.addr, b.addr))
	l := newLiar(t, a, d.addr, b.addr)
	eventually(t, "A believes L's claim", liveVia(a, d.addr, l.addr))

	want := map[string]bool{}
	for i := range 10 {
		text := fmt.Sprintf("before %d", i)
		want[text] = true
		if err := a.r.Submit(dataBundle(t, d.addr, text)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "A's first messages went to the liar", func() bool { return l.swallowed(d.addr) == 10 })
	// L floods A with junk while A talks to D.
	flood := make(chan struct{})
	go func() {
		defer close(flood)
		for range 400 {
			raw := mustMarshal(t, dataBundle(t, bundle.Addr{'X'}, "junk"))
			if l.l.Send(context.Background(), raw) != nil {
				return
			}
		}
	}()
	eventually(t, "L's routes lose preference", func() bool {
		for _, p := range a.r.Metrics().DTN.Penalised {
			if p == addrString(l.addr) {
				return true
			}
		}
		return false
	})
	for i := range 5 {
		text := fmt.Sprintf("after %d", i)
		want[text] = true
		if err := a.r.Submit(dataBundle(t, d.addr, text)); err != nil {
			t.Fatal(err)
		}
	}
	for len(want) > 0 {
		select {
		case x := <-d.arrive:
			if !want[string(x.Payload)] {
				t.Fatalf("delivered %q unexpectedly or twice", x.Payload)
			}
			delete(want, string(x.Payload))
		case <-time.After(10 * time.Second):
			t.Fatalf("never delivered: %v", want)
		}
	}
	if n := l.swallowed(d.addr); n != 10 {
		t.Errorf("L was handed %d messages for D, want only the 10 sent before it was found out", n)
	}
	<-flood
	m := a.r.Metrics()
	if rl := m.ByNeighbour[addrString(l.addr)].RateLimited; rl == 0 {
		t.Error("L's flood of 400 junk bundles was not rate-limited")
	}
	if rl := m.ByNeighbour[addrString(b.addr)].RateLimited; rl != 0 {
		t.Errorf("B, honest, was rate-limited %d times", rl)
	}
	eventually(t, "A holds nothing for D once the receipts are back", func() bool {
		recs, _ := a.st.ForDest(d.addr)
		return len(recs) == 0
	})
	for _, r := range a.r.Routes() {
		if r.Dest == d.addr && r.Via == l.addr && r.Penalty == 0 {
			t.Errorf("route to D through the liar shows no penalty: %+v", r)
		}
	}
}
