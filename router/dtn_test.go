package router

import (
	"slices"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports"
)

// held returns n's record of id, if it holds one.
func held(n *testNode, id bundle.ID) (store.Record, bool) {
	rec, err := n.st.Get(id)
	return rec, err == nil
}

func copiesAt(n *testNode, id bundle.ID) int {
	rec, ok := held(n, id)
	if !ok {
		return 0
	}
	return int(rec.Copies)
}

// meet joins two nodes for a contact; part ends it and waits until both
// noticed.
func meet(a, b *testNode) func(t *testing.T) {
	la, _ := connect(a, b)
	return func(t *testing.T) {
		t.Helper()
		la.Close()
		eventually(t, "the contact ends on both sides", func() bool { return !a.r.isUp(b.addr) && !b.r.isUp(a.addr) })
	}
}

// TestSprayOnContactReceiptClearsCopies: A holds a message for D and has
// no route to it. A meets B, then C: each contact hands over half of A's
// copy budget (4096 -> B 2048, C 1024, A keeps 1024), never the whole
// network's worth.
// C then meets D, which gets the message once. D's receipt travels back
// with the summaries: when C meets B, B drops its spare copy; when B meets
// A, A drops its own. Nothing is left anywhere, and the budget was in the
// store all along.
func TestSprayOnContactReceiptClearsCopies(t *testing.T) {
	a, b, c, d := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C'), newTestNode(t, 'D')
	msg := dataBundle(t, d.addr, "for D, whenever")
	if err := a.r.Submit(msg); err != nil {
		t.Fatal(err)
	}
	if got := copiesAt(a, msg.ID); got != policy.DefaultCopies {
		t.Fatalf("A holds %d copies, want the budget of %d", got, policy.DefaultCopies)
	}

	half, kept := policy.Spray(policy.DefaultCopies)
	quarter, left := policy.Spray(kept)
	part := meet(a, b)
	eventually(t, "A gives B half its copies", func() bool { return copiesAt(b, msg.ID) == half && copiesAt(a, msg.ID) == kept })
	part(t)
	part = meet(a, c)
	eventually(t, "A gives C half of what is left", func() bool { return copiesAt(c, msg.ID) == quarter && copiesAt(a, msg.ID) == left })
	part(t)
	if copiesAt(b, msg.ID)+copiesAt(c, msg.ID)+copiesAt(a, msg.ID) != policy.DefaultCopies {
		t.Fatalf("copies A %d B %d C %d: the budget of %d was not conserved", copiesAt(a, msg.ID), copiesAt(b, msg.ID), copiesAt(c, msg.ID), policy.DefaultCopies)
	}
	// The budget survives a restart of a holder.
	b.stop()
	b.start(t)
	if got := copiesAt(b, msg.ID); got != half {
		t.Fatalf("after a restart B holds %d copies, want %d", got, half)
	}

	part = meet(c, d)
	waitArrival(t, d, "for D, whenever")
	eventually(t, "C released its copy to D and heard the receipt", func() bool {
		_, ok := held(c, msg.ID)
		return !ok && c.r.Metrics().DTN.Receipts == 1
	})
	part(t)
	// C no longer holds it but its summaries still list it, so that no
	// holder C meets pushes the bundle back to it.
	if !slices.Contains(c.r.heldIDs(bundle.MaxSummaryIDs), msg.ID) {
		t.Error("C's summary does not list the bundle it passed on to D: holders it meets would push it back")
	}

	part = meet(b, c)
	eventually(t, "B drops its spare copy on C's receipt", func() bool { _, ok := held(b, msg.ID); return !ok })
	part(t)
	part = meet(a, b)
	eventually(t, "A drops its spare copy on B's receipt", func() bool { _, ok := held(a, msg.ID); return !ok })
	part(t)

	if cl := a.r.Metrics().DTN.Cleared + b.r.Metrics().DTN.Cleared; cl != 2 {
		t.Errorf("%d spare copies cleared by receipts, want A's and B's", cl)
	}
	if s := a.r.Metrics().DTN.Sprayed; s != 2 {
		t.Errorf("A sprayed %d copies, want 2 (one per contact)", s)
	}
	for _, n := range []*testNode{a, b, c, d} {
		if got := n.st.Stats().Bundles; got != 0 {
			t.Errorf("%c still holds %d bundles", n.addr[0], got)
		}
	}
	if got := d.r.Metrics().Total.Delivered; got != 1 {
		t.Errorf("D delivered %d times, want once", got)
	}
}

// TestSprayOfTheDefaultBudget: a new bundle starts with DefaultCopies
// (4096, more than the one byte budgets once had). On contact A grants B
// half, 2048, in the summary that precedes the bundle; B stores 2048 and A
// keeps 2048 in its store record, and both budgets survive a restart of
// the router over the reopened store.
func TestSprayOfTheDefaultBudget(t *testing.T) {
	a, b, d := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'D')
	msg := dataBundle(t, d.addr, "for D, with 4096 copies")
	if err := a.r.Submit(msg); err != nil {
		t.Fatal(err)
	}
	if rec, ok := held(a, msg.ID); !ok || rec.Copies != 4096 || policy.DefaultCopies != 4096 {
		t.Fatalf("A stored %+v (held %v), want a budget of 4096", rec, ok)
	}
	la, lb := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr, Authenticated: true})
	spy := spyLink{Link: la, sent: make(chan []byte, 256)}
	a.r.AddLink(spy)
	b.r.AddLink(lb)
	eventually(t, "A sprays half its copies to B", func() bool { return copiesAt(b, msg.ID) == 2048 && copiesAt(a, msg.ID) == 2048 })
	var granted []uint16
	for len(spy.sent) > 0 {
		x, err := bundle.Unmarshal(<-spy.sent)
		if err != nil || x.Kind != bundle.KindSummary {
			continue
		}
		s, err := bundle.UnmarshalSummary(x.Payload)
		if err != nil {
			t.Fatalf("A sent a summary B cannot read: %v", err)
		}
		for _, g := range s.Grants {
			if g.ID == msg.ID {
				granted = append(granted, g.Copies)
			}
		}
	}
	if !slices.Equal(granted, []uint16{2048}) {
		t.Fatalf("A's summaries granted %v copies of the bundle, want one grant of 2048", granted)
	}
	lb.Close()
	eventually(t, "the contact ends on both sides", func() bool { return !a.r.isUp(b.addr) && !b.r.isUp(a.addr) })
	for _, n := range []*testNode{a, b} {
		n.stop()
		n.start(t) // reopens the store
		rec, ok := held(n, msg.ID)
		if !ok || rec.Copies != 2048 {
			t.Fatalf("after a restart %c holds %+v (held %v), want 2048 copies", n.addr[0], rec, ok)
		}
	}
	if rec, _ := held(a, msg.ID); rec.From != (bundle.Addr{}) || rec.NextHop != (bundle.Addr{}) {
		t.Errorf("A's record is from %x for %x, want its own, unrouted", rec.From[:1], rec.NextHop[:1])
	}
	if rec, _ := held(b, msg.ID); rec.From != a.addr {
		t.Errorf("B's record is from %x, want A", rec.From[:1])
	}
}

// TestGrantsClampedToTheMax: a neighbour's grant is never taken beyond the
// largest budget, bundle.MaxCopies, aired or not, even if it got past the
// summary decoder or the radio's frame decoder.
func TestGrantsClampedToTheMax(t *testing.T) {
	a := newTestNode(t, 'A')
	from := bundle.Addr{'N'}
	ids := [4]bundle.ID{{1}, {2}, {3}, {4}}
	now := time.Now()
	a.r.dtn.addGrants(from, []bundle.Grant{{ID: ids[0], Copies: 60000}, {ID: ids[1], Copies: 3000}}, now, false)
	a.r.dtn.addGrants(from, []bundle.Grant{{ID: ids[2], Copies: 65535}, {ID: ids[3], Copies: 2048}}, now, true)
	for i, want := range []uint16{bundle.MaxCopies, 3000, bundle.MaxCopies, 2048} {
		if got, aired := a.r.dtn.takeGrant(from, ids[i]); got != want || aired != (i >= 2) {
			t.Errorf("grant %d taken as %d (aired %v), want %d", i, got, aired, want)
		}
	}
}

// TestSummariesOnlyToNeighboursThatSpeakThem: a neighbour that never sent
// a summary (an older node, which rejects them) gets the one sent when the
// link comes up and no notes after it; a neighbour that speaks them hears
// of new receipts.
func TestSummariesOnlyToNeighboursThatSpeakThem(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	old := bundle.Addr{'O'}
	la, lo := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: old, Authenticated: true})
	spy := spyLink{Link: la, sent: make(chan []byte, 256)}
	a.r.AddLink(spy)
	go func() { // the old node reads and ignores everything
		for {
			if _, err := lo.Recv(t.Context()); err != nil {
				return
			}
		}
	}()
	connect(a, b)
	if err := a.r.Submit(dataBundle(t, a.addr, "local")); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, a, "local")
	eventually(t, "B hears of the receipt", func() bool { return b.r.Metrics().DTN.Receipts == 1 })
	a.r.mu.Lock()
	on := a.r.nbrs[old]
	a.r.mu.Unlock()
	a.r.sendSummary(on, false) // a note, as notesLoop sends: must not go
	summaries := 0
	for len(spy.sent) > 0 {
		if x, err := bundle.Unmarshal(<-spy.sent); err == nil && x.Kind == bundle.KindSummary {
			summaries++
		}
	}
	if summaries != 1 {
		t.Fatalf("%d summaries went to a neighbour that never sent one, want only the first", summaries)
	}
}
