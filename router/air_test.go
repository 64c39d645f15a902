package router

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/radiolink"
)

// airNet is one radio channel joining test routers through the real radio
// link engine (transports/radiolink) on the wall clock, with no airtime
// model: a frame one radio transmits reaches, at once and without loss,
// every radio in its reach (all others unless a test says otherwise).
// Frames sent before every radio is on the channel wait until it is, so
// the first hellos are heard by all.
type airNet struct {
	t      *testing.T
	mu     sync.Mutex
	radios []*airRadio
	open   bool
	held   []airFrame
}

type airRadio struct {
	node  *testNode
	radio *radiolink.Radio
	reach map[*airRadio]bool // nil: every other radio
	// Counted under airNet.mu: aired-bundle frames (radiolink type 7) put
	// on the channel, and the bundle IDs the router acknowledged.
	aired, airedBytes int
	acked             []bundle.ID
}

type airFrame struct {
	from *airRadio
	data []byte
}

// newAirNet puts nodes on one channel; reach, if set, says who hears
// whom; clearOnly makes it an amateur-radio channel.
func newAirNet(t *testing.T, nodes []*testNode, reach func(i, j int) bool, clearOnly bool) *airNet {
	t.Helper()
	a := &airNet{t: t}
	for _, n := range nodes {
		ar := &airRadio{node: n}
		r, err := radiolink.New(radiolink.Config{Self: n.addr, Name: "air", MaxFrame: 255, ClearOnly: clearOnly}, radiolink.WallClock{},
			radiolink.Hooks{Transmit: func(f []byte) error { a.transmit(ar, f); return nil }})
		if err != nil {
			t.Fatal(err)
		}
		ar.radio = r
		a.radios = append(a.radios, ar)
	}
	if reach != nil {
		for i, x := range a.radios {
			x.reach = map[*airRadio]bool{}
			for j, y := range a.radios {
				if i != j && reach(i, j) {
					x.reach[y] = true
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	for _, ar := range a.radios {
		go func() {
			for {
				l, err := ar.radio.Accept(ctx)
				if err != nil {
					return
				}
				ar.node.r.AddLink(ackSpy{Link: l.(*radiolink.Link), net: a, from: ar})
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		for _, ar := range a.radios {
			ar.radio.Close()
		}
	})
	a.mu.Lock()
	a.open = true
	held := a.held
	a.held = nil
	a.mu.Unlock()
	for _, f := range held {
		a.deliver(f)
	}
	return a
}

func (a *airNet) transmit(from *airRadio, f []byte) {
	f = slices.Clone(f)
	a.mu.Lock()
	if f[0]>>4 == 7 { // an aired bundle (radiolink FORMAT.md)
		from.aired++
		from.airedBytes += len(f)
	}
	if !a.open {
		a.held = append(a.held, airFrame{from, f})
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	a.deliver(airFrame{from, f})
}

func (a *airNet) deliver(f airFrame) {
	for _, to := range a.radios {
		if to != f.from && (f.from.reach == nil || f.from.reach[to]) {
			to.radio.Receive(radiolink.RxFrame{Data: slices.Clone(f.data), RSSI: math.NaN(), SNR: math.NaN(), At: time.Now()})
		}
	}
}

// airedBy is how many aired-bundle frames node i put on the channel.
func (a *airNet) airedBy(i int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.radios[i].aired
}

// ackedBy lists the bundle IDs node i acknowledged over the radio.
func (a *airNet) ackedBy(i int) []bundle.ID {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.radios[i].acked)
}

// up waits until every node has a radio link to every node it hears.
func (a *airNet) up() {
	a.t.Helper()
	eventually(a.t, "every radio neighbour is up", func() bool {
		for _, x := range a.radios {
			for _, y := range a.radios {
				if x != y && (x.reach == nil || x.reach[y]) && !x.node.r.isUp(y.node.addr) {
					return false
				}
			}
		}
		return true
	})
}

// ackSpy is a radio link that records the custody acks sent over it; every
// other capability (BroadcastLink, RadioLink, ClearOnlyLink) is the
// radio link's own.
type ackSpy struct {
	*radiolink.Link
	net  *airNet
	from *airRadio
}

func (s ackSpy) Send(ctx context.Context, f []byte) error {
	if b, err := bundle.Unmarshal(f); err == nil && b.Kind == bundle.KindCustodyAck {
		if ids, err := bundle.UnmarshalCustodyAck(b.Payload); err == nil {
			s.net.mu.Lock()
			s.from.acked = append(s.from.acked, ids...)
			s.net.mu.Unlock()
		}
	}
	return s.Link.Send(ctx, f)
}

var _ transports.BroadcastLink = ackSpy{}

// holdUnrouted stores b at n as Submit does, but with a copy budget of
// copies, and lets the router act on it.
func holdUnrouted(t *testing.T, n *testNode, b *bundle.Bundle, copies uint16) {
	t.Helper()
	raw := mustMarshal(t, b)
	now := time.Now()
	rec := store.Record{ID: b.ID, Dest: b.Dest, Raw: raw, Received: now.UnixMilli(),
		Expires: now.Add(b.Remaining(0)).UnixMilli(), Copies: copies}
	if err := n.st.Put(rec)[0]; err != nil {
		t.Fatal(err)
	}
	wake(n.r.unrouted)
}

// TestAirSprayOneBroadcastServesEveryHearer: S and three hearers share a
// radio and nothing else; S holds a message for D, which nobody can reach,
// with 64 copies (AirSprayMin, the least budget that airs). S puts it on
// the air once: each hearer keeps policy.AirShare's share (10, too few to
// air again) and acknowledges nothing, S keeps custody and the rest (34)
// in its store. Later D meets one hearer over a point-to-point link and
// gets the message exactly once; its receipt, carried to S over another
// contact, clears S's copy.
func TestAirSprayOneBroadcastServesEveryHearer(t *testing.T) {
	s, d := newTestNode(t, 'S'), newTestNode(t, 'D')
	hs := []*testNode{newTestNode(t, '1'), newTestNode(t, '2'), newTestNode(t, '3')}
	air := newAirNet(t, append([]*testNode{s}, hs...), nil, false)
	air.up()

	const copies = 64
	share, keep := policy.AirShare(copies, len(hs))
	if share >= policy.AirSprayMin || share == 0 || copies < policy.AirSprayMin {
		t.Fatalf("test needs a budget that airs and a share below AirSprayMin, got %d of %d", share, copies)
	}
	if share != 10 || keep != 34 {
		t.Fatalf("AirShare(%d, %d) = %d, %d; the test expects 10 each and 34 kept", copies, len(hs), share, keep)
	}
	msg := dataBundle(t, d.addr, "for D, over the air")
	holdUnrouted(t, s, msg, copies)
	for _, h := range hs {
		eventually(t, "every hearer holds the aired message with its share", func() bool { return copiesAt(h, msg.ID) == share })
	}
	if got := copiesAt(s, msg.ID); got != keep {
		t.Fatalf("S keeps %d copies, want %d", got, keep)
	}
	s.r.reroute() // another round (synchronous): the bundle is not aired twice
	air.mu.Lock()
	t.Logf("one air spray of a %d-byte bundle to %d hearers: 1 frame of %d bytes", len(mustMarshal(t, msg)), len(hs), air.radios[0].airedBytes)
	air.mu.Unlock()
	if n, m := air.airedBy(0), s.r.Metrics().DTN.Aired; n != 1 || m != 1 {
		t.Fatalf("S put %d aired frames on the channel (metric %d), want 1", n, m)
	}
	for i, h := range hs {
		if got := air.airedBy(i + 1); got != 0 {
			t.Errorf("hearer %c aired %d frames with a share of %d, want none", h.addr[0], got, share)
		}
		if rec, _ := held(h, msg.ID); rec.From != s.addr || rec.NextHop != (bundle.Addr{}) {
			t.Errorf("hearer %c holds it from %x for %x, want from S, unrouted", h.addr[0], rec.From[:1], rec.NextHop[:1])
		}
	}
	// A message S sends each hearer now is read after the aired one: once
	// its custody ack is sent, any ack for the aired one has been too.
	for i, h := range hs {
		if err := s.r.Submit(dataBundle(t, h.addr, "marker")); err != nil {
			t.Fatal(err)
		}
		waitArrival(t, h, "marker")
		eventually(t, "the hearer acknowledges the marker", func() bool { return len(air.ackedBy(i+1)) > 0 })
	}
	for i, h := range hs {
		acked := air.ackedBy(i + 1)
		if slices.Contains(acked, msg.ID) || len(acked) != 1 {
			t.Errorf("hearer %c acknowledged %d bundles over the air (aired one among them: %v), want only its marker",
				h.addr[0], len(acked), slices.Contains(acked, msg.ID))
		}
	}

	part := meet(d, hs[1])
	waitArrival(t, d, "for D, over the air")
	part(t)
	part = meet(d, s) // D's receipt reaches S, which drops its copy
	eventually(t, "S drops its copy on D's receipt", func() bool { _, ok := held(s, msg.ID); return !ok })
	part(t)
	if got := d.r.Metrics().Total.Delivered; got != 1 {
		t.Fatalf("D delivered %d times, want exactly once", got)
	}
}

// TestAirSprayNeverBulkRoutedOrCiphertextOnAmateurRadio: bulk data, a
// bundle with a live route (to a radio neighbour) and an encrypted bundle
// on a clear-only channel are never aired; a clear-signed one is.
func TestAirSprayNeverBulkRoutedOrCiphertextOnAmateurRadio(t *testing.T) {
	s, h, d := newTestNode(t, 'S'), newTestNode(t, 'H'), newTestNode(t, 'D')
	air := newAirNet(t, []*testNode{s, h}, nil, false)
	air.up()
	bulk := dataBundle(t, d.addr, "a file chunk")
	bulk.Flags |= bundle.FlagBulk
	holdUnrouted(t, s, bulk, 64)
	if err := s.r.Submit(dataBundle(t, h.addr, "routed")); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, h, "routed")
	s.r.reroute() // synchronous: whatever it would air is queued on return
	if m, n := s.r.Metrics().DTN.Aired, air.airedBy(0); m != 0 || n != 0 {
		t.Fatalf("S aired %d bundles (%d frames), want none: bulk and routed bundles stay off the air", m, n)
	}
	if got := copiesAt(s, bulk.ID); got != 64 {
		t.Fatalf("the bulk bundle's budget changed to %d", got)
	}

	// Amateur radio: ciphertext never, signed plaintext yes.
	a, b := newTestNode(t, 'a'), newTestNode(t, 'b')
	ham := newAirNet(t, []*testNode{a, b}, nil, true)
	ham.up()
	sealed := dataBundle(t, d.addr, "sealed")
	holdUnrouted(t, a, sealed, 64)
	a.r.reroute()
	if m := a.r.Metrics().DTN.Aired; m != 0 {
		t.Fatalf("an encrypted bundle was aired on a clear-only radio (%d)", m)
	}
	clear := dataBundle(t, d.addr, "signed, in the clear")
	clear.Kind = bundle.KindClearSigned
	holdUnrouted(t, a, clear, 64)
	eventually(t, "the clear-signed bundle is aired on the amateur channel", func() bool { return copiesAt(b, clear.ID) > 0 })
	if m, got := a.r.Metrics().DTN.Aired, copiesAt(b, sealed.ID); m != 1 || got != 0 {
		t.Fatalf("aired %d bundles, the hearer holds %d copies of the sealed one; want 1 and 0", m, got)
	}
}

// TestAirSprayHearerAirsItsShareInTurn: on a chain S - H1 - H2 (each hears
// only its neighbours) S airs a new bundle's DefaultCopies (4096) to H1,
// which gets 2048 (the frame carries two bytes: no cap below the budget)
// while S keeps 2048. H1 airs again, to S and H2 (512 each, keeping 1024);
// S holds the bundle already and drops it. H2's 512 is still above
// AirSprayMin, so it airs to H1 (256, keeping 256), which drops it too:
// each node airs exactly once, and no copies are added to a holder.
func TestAirSprayHearerAirsItsShareInTurn(t *testing.T) {
	s, h1, h2, d := newTestNode(t, 'S'), newTestNode(t, '1'), newTestNode(t, '2'), newTestNode(t, 'D')
	air := newAirNet(t, []*testNode{s, h1, h2}, func(i, j int) bool { return i-j == 1 || j-i == 1 }, false)
	air.up()
	msg := dataBundle(t, d.addr, "down the chain")
	if err := s.r.Submit(msg); err != nil {
		t.Fatal(err)
	}
	s1, k1 := policy.AirShare(policy.DefaultCopies, 1)
	s2, k2 := policy.AirShare(s1, 2)
	_, k3 := policy.AirShare(s2, 1)
	if s1 != 2048 || k1 != 2048 || s2 != 512 || k2 != 1024 || k3 != 256 {
		t.Fatalf("AirShare: S gives %d keeps %d, H1 gives %d keeps %d, H2 keeps %d; the test expects 2048, 2048, 512, 1024, 256", s1, k1, s2, k2, k3)
	}
	eventually(t, "the copies spread down the chain", func() bool {
		return copiesAt(s, msg.ID) == k1 && copiesAt(h1, msg.ID) == k2 && copiesAt(h2, msg.ID) == k3
	})
	eventually(t, "S, H1 and H2 aired once", func() bool { return air.airedBy(0) == 1 && air.airedBy(1) == 1 && air.airedBy(2) == 1 })
	for _, n := range []*testNode{s, h1, h2} {
		n.r.reroute() // another round each (synchronous): nothing more goes on the air
	}
	for i, n := range []*testNode{s, h1, h2} {
		if m, f := n.r.Metrics().DTN.Aired, air.airedBy(i); m != 1 || f != 1 {
			t.Errorf("node %d aired %d times (%d frames), want 1", i, m, f)
		}
	}
	if got1, got2 := copiesAt(s, msg.ID), copiesAt(h1, msg.ID); got1 != k1 || got2 != k2 {
		t.Errorf("S holds %d and H1 %d copies after the later air sprays, want %d and %d: a bundle held already is dropped, no copies added", got1, got2, k1, k2)
	}
	t.Logf("copies S %d, H1 %d, H2 %d", k1, k2, k3)
}

// TestAirSprayHeldToIngressLimit: broadcast data counts against the
// hearer's per-neighbour radio ingress limit like unicast data: with a
// burst of one, a hearer takes the first of two aired bundles and refuses
// the second (which its sender does not air again).
func TestAirSprayHeldToIngressLimit(t *testing.T) {
	s, d := newTestNode(t, 'S'), newTestNode(t, 'D')
	h := newTunedNode(t, 'H', func(c *Config) { c.RadioIngressRate, c.RadioIngressBurst = 1e-6, 1 })
	air := newAirNet(t, []*testNode{s, h}, nil, false)
	air.up()
	first, second := dataBundle(t, d.addr, "first"), dataBundle(t, d.addr, "second")
	holdUnrouted(t, s, first, 64)
	eventually(t, "the hearer takes the first aired bundle", func() bool { return copiesAt(h, first.ID) > 0 })
	holdUnrouted(t, s, second, 64)
	eventually(t, "the hearer refuses the second over its ingress limit", func() bool { return h.r.Metrics().Total.RateLimited == 1 })
	s.r.reroute()
	if _, ok := held(h, second.ID); ok || s.r.Metrics().DTN.Aired != 2 {
		t.Fatalf("hearer holds the second: %v; S aired %d bundles, want 2", ok, s.r.Metrics().DTN.Aired)
	}
}
