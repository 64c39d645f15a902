package router

import (
	"context"
	"testing"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// recvData returns the next data bundle b sent over l, answering nothing.
func recvData(t *testing.T, l transports.Link) *bundle.Bundle {
	t.Helper()
	for {
		f, err := l.Recv(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if x, err := bundle.Unmarshal(f); err == nil && x.Kind == bundle.KindData {
			return x
		}
	}
}

func sendAck(t *testing.T, l transports.Link, to bundle.Addr, id bundle.ID) {
	t.Helper()
	p, _ := bundle.MarshalCustodyAck([]bundle.ID{id})
	ack := bundle.Bundle{Version: bundle.Version, Kind: bundle.KindCustodyAck, Dest: to, ID: bundle.ID{0xac, id[0], id[1]}, Lifetime: 60000, Payload: p}
	raw, _ := ack.Marshal()
	if err := l.Send(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
}

// TestBundleBackRoundALoopIsNotLost: B took a bundle from A, passed it to
// C and released it; the bundle then comes back to B from C (a routing
// loop). Acknowledging it as a mere duplicate would lose the only copy: B
// must take custody again.
func TestBundleBackRoundALoopIsNotLost(t *testing.T) {
	b := newTestNode(t, 'B')
	aAddr, cAddr, dest := bundle.Addr{'A'}, bundle.Addr{'C'}, bundle.Addr{'D'}
	fromA, bA := transports.NewMemPair(transports.MemOptions{AddrA: aAddr, AddrB: b.addr})
	toC, bC := transports.NewMemPair(transports.MemOptions{AddrA: cAddr, AddrB: b.addr})
	b.r.AddLink(bA)
	b.r.AddLink(bC)
	// C claims a route to D, so B forwards there.
	ann := bundle.Announce{Seq: 1, Routes: []bundle.Route{{Dest: cAddr}, {Dest: dest, Hops: 1}}}
	ap, _ := ann.Marshal()
	ab := bundle.Bundle{Version: bundle.Version, Kind: bundle.KindAnnounce, Dest: b.addr, ID: bundle.ID{0xa1}, Lifetime: 60000, Payload: ap}
	raw, _ := ab.Marshal()
	toC.Send(context.Background(), raw)
	eventually(t, "B learns D through C", hasRoute(b, dest))

	x := dataBundle(t, dest, "round and round")
	fromA.Send(context.Background(), mustMarshal(t, x))
	got := recvData(t, toC)
	sendAck(t, toC, b.addr, got.ID) // C takes custody
	eventually(t, "B released the bundle to C", func() bool { return b.st.Stats().Bundles == 0 })

	// C's routes are wrong: it hands the bundle back to B.
	toC.Send(context.Background(), mustMarshal(t, got))
	eventually(t, "B holds the bundle again", func() bool { return b.st.Stats().Bundles == 1 })
	if d := b.r.Metrics().Total.Duplicate; d != 0 {
		t.Errorf("the returning bundle was counted a duplicate (%d)", d)
	}
	// A retransmission from A (its ack was lost) is still a duplicate.
	fromA.Send(context.Background(), mustMarshal(t, x))
	eventually(t, "A's resend is a duplicate", func() bool { return b.r.Metrics().Total.Duplicate == 1 })
}

// TestStaleRoutesDoNotCircle: in a full mesh where every node lost the
// destination, a bundle waits at the node it is given to (all were the
// destination's neighbours), instead of being passed round. A summary
// round may spray copies of it to the other two (spray-and-wait), so it
// is held at most three times; passed round it would be sent again and
// again.
func TestStaleRoutesDoNotCircle(t *testing.T) {
	a, b, c, d := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C'), newTestNode(t, 'D')
	connect(a, b)
	connect(a, c)
	connect(b, c)
	_, da := connect(d, a)
	_, db := connect(d, b)
	_, dc := connect(d, c)
	eventually(t, "everyone sees D", func() bool { return hasRoute(a, d.addr)() && hasRoute(b, d.addr)() && hasRoute(c, d.addr)() })
	da.Close()
	db.Close()
	dc.Close()
	eventually(t, "D is gone", func() bool { return !a.r.isUp(d.addr) && !b.r.isUp(d.addr) && !c.r.isUp(d.addr) })
	if err := a.r.Submit(dataBundle(t, d.addr, "wait for D")); err != nil {
		t.Fatal(err)
	}
	held := func() int { return a.st.Stats().Bundles + b.st.Stats().Bundles + c.st.Stats().Bundles }
	sent := func() uint64 { return a.r.Metrics().Total.Out + b.r.Metrics().Total.Out + c.r.Metrics().Total.Out }
	eventually(t, "the bundle is held", func() bool { return held() >= 1 })
	connect(a, d)
	connect(b, d)
	waitArrival(t, d, "wait for D")
	if h := held(); h > 3 {
		t.Errorf("the bundle is held %d times by three nodes", h)
	}
	// One hand-over to a custodian, two spray copies, and a send to D from
	// each holder: anything far beyond is the bundle going round.
	if n := sent(); n > 8 {
		t.Errorf("A, B and C sent the bundle %d times while D was away: it was passed round", n)
	}
}
