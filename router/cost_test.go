package router

import (
	"context"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// fakeRadio is one end of an in-memory link that presents itself to the
// router as a radio (transports.RadioLink) with a bit rate and an airtime
// budget the test sets, and counts what the router sends on it by kind.
// (The real transports/radiolink is not used: its airtime runs on a
// virtual clock that the router's tests do not drive.)
type fakeRadio struct {
	*transports.MemLink
	rate  float64
	left  atomic.Uint64 // math.Float64bits of the share of airtime left
	mu    sync.Mutex
	kinds map[bundle.Kind]int
}

func newFakeRadio(l transports.Link, bitRate float64) *fakeRadio {
	f := &fakeRadio{MemLink: l.(*transports.MemLink), rate: bitRate, kinds: map[bundle.Kind]int{}}
	f.setAirtimeLeft(1)
	return f
}

func (f *fakeRadio) setAirtimeLeft(v float64) { f.left.Store(math.Float64bits(v)) }
func (f *fakeRadio) AirtimeLeft() float64     { return math.Float64frombits(f.left.Load()) }
func (f *fakeRadio) BitRate() float64         { return f.rate }
func (f *fakeRadio) RadioInfo() transports.RadioInfo {
	return transports.RadioInfo{Radio: "fake", RSSI: math.NaN(), SNR: math.NaN()}
}

func (f *fakeRadio) Send(ctx context.Context, frame []byte) error {
	if b, err := bundle.Unmarshal(frame); err == nil {
		f.mu.Lock()
		f.kinds[b.Kind]++
		f.mu.Unlock()
	}
	return f.MemLink.Send(ctx, frame)
}

func (f *fakeRadio) sent(k bundle.Kind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kinds[k]
}

// connectRadio joins two nodes with a radio-like link at bitRate.
func connectRadio(a, b *testNode, bitRate float64) (*fakeRadio, *fakeRadio) {
	la, lb := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr, Authenticated: true})
	ra, rb := newFakeRadio(la, bitRate), newFakeRadio(lb, bitRate)
	a.r.AddLink(ra)
	b.r.AddLink(rb)
	return ra, rb
}

func liveVia(n *testNode, dest, via bundle.Addr) func() bool {
	return func() bool {
		for _, r := range n.r.Routes() {
			if r.Dest == dest && r.Via == via && r.Live {
				return true
			}
		}
		return false
	}
}

func relayed(n *testNode) uint64 { return n.r.Metrics().Total.Out }

// TestChatTakesTheCheaperPathAndMovesBack: A reaches D over two relays, B
// over internet links and C over slow radio links. Chat goes through B (2
// units against 8); when A's link to B dies it goes through C at once
// (no waiting out a hold-down); when the link returns it goes through B
// again. D sees every message once.
func TestChatTakesTheCheaperPathAndMovesBack(t *testing.T) {
	a, b, c, d := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C'), newTestNode(t, 'D')
	ab, _ := connect(a, b)
	connect(b, d)
	connectRadio(a, c, 1200)
	connectRadio(c, d, 1200)
	eventually(t, "A hears of D through both relays", func() bool { return liveVia(a, d.addr, b.addr)() && liveVia(a, d.addr, c.addr)() })
	for _, r := range a.r.Routes() {
		if r.Dest == d.addr && r.Via == b.addr && r.Hops != 2 || r.Dest == d.addr && r.Via == c.addr && r.Hops != 8 {
			t.Errorf("route to D via %x costs %d units, want 2 through the internet relay and 8 over the radios", r.Via[:1], r.Hops)
		}
	}
	send := func(text string) {
		t.Helper()
		if err := a.r.Submit(dataBundle(t, d.addr, text)); err != nil {
			t.Fatal(err)
		}
		waitArrival(t, d, text)
		// A keeps a hedge until D's receipt comes back through the relay.
		eventually(t, "the receipt clears A's hedge", func() bool { return a.st.Stats().Bundles == 0 })
	}
	send("fast path")
	if relayed(b) != 1 || relayed(c) != 0 {
		t.Fatalf("B relayed %d, C %d: want the cheap path through B", relayed(b), relayed(c))
	}

	ab.Close()
	eventually(t, "A notices B is gone", func() bool { return !a.r.isUp(b.addr) })
	send("radio path")
	if relayed(c) != 1 {
		t.Fatalf("with B gone C relayed %d, want the message over the radios", relayed(c))
	}

	connect(a, b)
	eventually(t, "A hears of D through B again", liveVia(a, d.addr, b.addr))
	send("fast again")
	if relayed(b) != 2 || relayed(c) != 1 {
		t.Fatalf("after B returned B relayed %d, C %d: want traffic back on the cheap path", relayed(b), relayed(c))
	}
	select {
	case x := <-d.arrive:
		t.Fatalf("delivered twice: %q", x.Payload)
	default:
	}
}

// TestSlowWiredLinkCostsMore: two internet paths, one through a relay
// with 400 ms of latency to it: chat goes the fast way, and the far link
// counts 2 units where a fast one counts 1.
func TestSlowWiredLinkCostsMore(t *testing.T) {
	a, b, c, d := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C'), newTestNode(t, 'D')
	la, lc := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr, Authenticated: true, Latency: 400 * time.Millisecond})
	a.r.AddLink(la)
	b.r.AddLink(lc)
	connect(b, d)
	connect(a, c)
	connect(c, d)
	eventually(t, "A hears of D through both", func() bool { return liveVia(a, d.addr, b.addr)() && liveVia(a, d.addr, c.addr)() })
	for _, r := range a.r.Routes() {
		if r.Dest == b.addr && r.Via == b.addr && r.Hops != 2 {
			t.Errorf("the 400 ms link to B counts %d units, want 2", r.Hops)
		}
	}
	if err := a.r.Submit(dataBundle(t, d.addr, "the quick way")); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, d, "the quick way")
	if relayed(c) != 1 || relayed(b) != 0 {
		t.Fatalf("C relayed %d, B %d: want the low-latency path through C", relayed(c), relayed(b))
	}
}

// TestBulkSparesARadioLowOnAirtime: over a radio with 30 % of its airtime
// budget left, chat goes at once and a bulk bundle waits; once the budget
// recovers the bulk bundle goes too. Summaries never go on air.
func TestBulkSparesARadioLowOnAirtime(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	ra, _ := connectRadio(a, b, 5500)
	ra.setAirtimeLeft(0.3)
	eventually(t, "A sees B", hasRoute(a, b.addr))
	big := dataBundle(t, b.addr, "bulk "+strings.Repeat("x", 3000))
	if err := a.r.Submit(big); err != nil {
		t.Fatal(err)
	}
	if err := a.r.Submit(dataBundle(t, b.addr, "chat")); err != nil {
		t.Fatal(err)
	}
	// The bulk bundle was queued first: the round that sent the chat
	// passed it over.
	waitArrival(t, b, "chat")
	eventually(t, "A released the chat and holds the bulk bundle", func() bool { return a.st.Stats().Bundles == 1 })
	if n := ra.sent(bundle.KindData); n != 1 {
		t.Fatalf("%d data bundles went on the radio while its budget was low, want only the chat", n)
	}
	ra.setAirtimeLeft(1)
	select {
	case x := <-b.arrive:
		if !strings.HasPrefix(string(x.Payload), "bulk") {
			t.Fatalf("delivered %q", x.Payload[:10])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the bulk bundle never went once the radio had airtime again")
	}
	if n := ra.sent(bundle.KindSummary); n != 0 {
		t.Errorf("%d summaries went on the radio, want none", n)
	}
}
