package router

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports"
)

// testNode is a router with a real bbolt store and a recording Deliver.
type testNode struct {
	addr   bundle.Addr
	r      *Router
	st     *store.Store
	path   string
	mu     sync.Mutex
	got    []*bundle.Bundle
	arrive chan *bundle.Bundle
	reject func(*bundle.Bundle) error
	tune   func(*Config) // adjusts the router's configuration, if set
}

func newTestNode(t *testing.T, name byte) *testNode {
	t.Helper()
	return newTunedNode(t, name, nil)
}

// newTunedNode is newTestNode with tune applied to the router's Config.
func newTunedNode(t *testing.T, name byte, tune func(*Config)) *testNode {
	t.Helper()
	n := &testNode{addr: bundle.Addr{name}, path: filepath.Join(t.TempDir(), "tern.db"), arrive: make(chan *bundle.Bundle, 4096), tune: tune}
	n.start(t)
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *testNode) start(t *testing.T) {
	t.Helper()
	st, err := store.Open(n.path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Self: n.addr, Store: st, Logger: slog.New(slog.DiscardHandler), RetryMin: 200 * time.Millisecond, AnnounceInterval: time.Hour,
		SummaryDelay: 20 * time.Millisecond,
		Deliver: func(ctx context.Context, b *bundle.Bundle) error {
			if n.reject != nil {
				if err := n.reject(b); err != nil {
					return err
				}
			}
			n.mu.Lock()
			n.got = append(n.got, b)
			n.mu.Unlock()
			n.arrive <- b
			return nil
		},
	}
	if n.tune != nil {
		n.tune(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.r, n.st = r, st
}

func (n *testNode) stop() {
	if n.r != nil {
		n.r.Close()
		n.st.Close()
		n.r = nil
	}
}

// connect joins two nodes with a reliable in-memory link.
func connect(a, b *testNode) (transports.Link, transports.Link) {
	la, lb := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr, Authenticated: true})
	a.r.AddLink(la)
	b.r.AddLink(lb)
	return la, lb
}

func dataBundle(t *testing.T, to bundle.Addr, payload string) *bundle.Bundle {
	t.Helper()
	id, err := bundle.NewID(rand.Reader)
	if err != nil {
		id = bundle.ID{byte(len(payload)), payload[0]}
	}
	return &bundle.Bundle{Version: bundle.Version, Kind: bundle.KindData, Dest: to, ID: id,
		Created: time.Now().UnixMilli(), Lifetime: 3_600_000, HopLimit: 8, Payload: []byte(payload)}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			// What every goroutine waits on, grouped: a timeout here is a
			// router stuck, not slow (the conditions hold within
			// milliseconds), so the stacks say where.
			var stacks bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("timed out waiting until %s; goroutines:\n%s", what, stacks.String())
		}
		<-tick.C
	}
}

func waitArrival(t *testing.T, n *testNode, payload string) *bundle.Bundle {
	t.Helper()
	select {
	case b := <-n.arrive:
		if string(b.Payload) != payload {
			t.Fatalf("delivered %q, want %q", b.Payload, payload)
		}
		return b
	case <-time.After(10 * time.Second):
		t.Fatalf("bundle %q never delivered", payload)
	}
	return nil
}

// deliveries counts, by bundle, how often n's application was delivered
// each bundle.
func deliveries(n *testNode) map[bundle.ID]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	got := map[bundle.ID]int{}
	for _, b := range n.got {
		got[b.ID]++
	}
	return got
}

func hasRoute(n *testNode, dest bundle.Addr) func() bool {
	return func() bool {
		for _, r := range n.r.Routes() {
			if r.Dest == dest && r.Live {
				return true
			}
		}
		return false
	}
}

func TestMultiHopDeliveryReleasesCustody(t *testing.T) {
	a, b, c := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C')
	connect(a, b)
	connect(b, c)
	eventually(t, "A learns a route to C through B", hasRoute(a, c.addr))

	msg := dataBundle(t, c.addr, "hello C")
	if err := a.r.Submit(msg); err != nil {
		t.Fatal(err)
	}
	got := waitArrival(t, c, "hello C")
	if got.HopLimit != msg.HopLimit-2 {
		t.Errorf("hop limit at C = %d, want %d (two hops)", got.HopLimit, msg.HopLimit-2)
	}
	eventually(t, "A and B released custody", func() bool {
		return a.st.Stats().Bundles == 0 && b.st.Stats().Bundles == 0 && c.st.Stats().Bundles == 0
	})
	if m := b.r.Metrics().Total; m.In != 1 || m.Out != 1 {
		t.Errorf("relay counters in=%d out=%d, want 1 and 1", m.In, m.Out)
	}
}

func TestBundleWaitsAtRelayUntilDestinationReturns(t *testing.T) {
	a, b, c := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C')
	connect(a, b)
	_, cb := connect(b, c)
	eventually(t, "A learns a route to C", hasRoute(a, c.addr))

	cb.Close() // C goes away
	eventually(t, "B notices C left", func() bool { return !b.r.isUp(c.addr) })

	if err := a.r.Submit(dataBundle(t, c.addr, "while you were away")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bundle waits at B, not A", func() bool {
		return a.st.Stats().Bundles == 0 && b.st.Stats().Bundles == 1
	})
	select {
	case <-c.arrive:
		t.Fatal("delivered while C was away")
	default:
	}
	connect(b, c) // C returns
	waitArrival(t, c, "while you were away")
	eventually(t, "B released the bundle", func() bool { return b.st.Stats().Bundles == 0 })
}

func TestHeldLocallyWithoutRouteThenSentWhenOneAppears(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	if err := a.r.Submit(dataBundle(t, b.addr, "queued")); err != nil {
		t.Fatal(err)
	}
	if got := a.st.Stats().Bundles; got != 1 {
		t.Fatalf("A holds %d bundles, want 1", got)
	}
	connect(a, b)
	waitArrival(t, b, "queued")
}

func TestDuplicateDeliveredOnce(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	connect(a, b)
	eventually(t, "A sees B", hasRoute(a, b.addr))
	m := dataBundle(t, b.addr, "once")
	if err := a.r.Submit(m); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, b, "once")
	eventually(t, "A released custody", func() bool { return a.st.Stats().Bundles == 0 })
	// The same bundle again (a replay, or a copy over another path).
	err := a.r.Submit(m)
	if err == nil {
		eventually(t, "B counts the duplicate", func() bool { return b.r.Metrics().Total.Duplicate == 1 })
	} else if !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("resubmit: %v", err)
	}
	select {
	case x := <-b.arrive:
		t.Fatalf("delivered twice: %q", x.Payload)
	default:
	}
}

func TestRejectedDeliveryCountedAndDropped(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	b.reject = func(x *bundle.Bundle) error {
		if bytes.HasPrefix(x.Payload, []byte("forged")) {
			return Reject("forged", errors.New("bad tag"))
		}
		return nil
	}
	connect(a, b)
	a.r.Submit(dataBundle(t, b.addr, "forged one"))
	a.r.Submit(dataBundle(t, b.addr, "genuine"))
	waitArrival(t, b, "genuine")
	eventually(t, "the forgery is counted", func() bool {
		return b.r.Metrics().Rejected["forged"] == 1 && b.st.Stats().Bundles == 0
	})
}

func TestRestartResendsUnacknowledged(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	for i := range 20 {
		if err := a.r.Submit(dataBundle(t, b.addr, string(rune('a'+i))+" queued")); err != nil {
			t.Fatal(err)
		}
	}
	a.stop()
	a.start(t) // the queue survives a restart
	if got := a.st.Stats().Bundles; got != 20 {
		t.Fatalf("after restart A holds %d bundles, want 20", got)
	}
	connect(a, b)
	seen := map[string]bool{}
	for range 20 {
		select {
		case x := <-b.arrive:
			if seen[string(x.Payload)] {
				t.Fatalf("delivered twice: %q", x.Payload)
			}
			seen[string(x.Payload)] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 20 arrived", len(seen))
		}
	}
}

func TestMalformedFrameCountedNotFatal(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	la, lb := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr})
	b.r.AddLink(lb) // the test speaks for A by hand on la
	for _, junk := range [][]byte{{0xff}, {0x9f, 0x01}, []byte("not cbor at all"), {}} {
		if err := la.Send(context.Background(), junk); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "B counts the malformed frames", func() bool { return b.r.Metrics().Rejected["malformed"] >= 3 })
	// B still works.
	if err := la.Send(context.Background(), mustMarshal(t, dataBundle(t, b.addr, "still alive"))); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, b, "still alive")
}

func mustMarshal(t *testing.T, b *bundle.Bundle) []byte {
	raw, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
