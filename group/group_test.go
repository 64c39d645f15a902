package group

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/message"
)

// trio is alice (owner), bob and carol in one group "Trip". Alice has both
// cards; bob and carol do not know each other: the membership carries their
// cards.
func trio(t *testing.T) (*testNet, *testNode, *testNode, *testNode, Info) {
	t.Helper()
	net := newTestNet(t)
	alice, bob, carol := net.node("alice"), net.node("bob"), net.node("carol")
	alice.knows(bob)
	alice.knows(carol)
	g, err := alice.groups.Create("Trip", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	net.flush()
	return net, alice, bob, carol, g
}

func TestGroupLifecycle(t *testing.T) {
	net, alice, bob, carol, g := trio(t)
	if g.Epoch != 1 || len(g.Members) != 3 || !g.IsOwner || g.Note != "" {
		t.Fatalf("created %+v", g)
	}
	for _, n := range []*testNode{bob, carol} {
		in, err := n.groups.Get("trip")
		if err != nil {
			t.Fatalf("%s has no group after the invitation: %v (refused: %v)", n.name, err, n.rejects)
		}
		if in.ID != g.ID || in.Epoch != 1 || len(in.Members) != 3 || in.IsOwner || in.OwnerName != "alice" {
			t.Errorf("%s sees %+v", n.name, in)
		}
	}
	if got := notices(bob.history(t, g.ID)); len(got) != 1 || got[0] != `alice added you to the group "Trip" with carol` {
		t.Errorf("bob's notices: %q", got)
	}

	// Bob writes; bob and carol have no contact with each other.
	rec, err := bob.groups.Send(g.ID, "hello all")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != chat.StateQueued || len(rec.Members) != 2 || !rec.Group || rec.Peer != g.ID {
		t.Fatalf("bob's record %+v", rec)
	}
	net.flush()
	for _, n := range []*testNode{alice, carol} {
		h := n.history(t, g.ID)
		if got := texts(h); !slices.Equal(got, []string{"hello all"}) {
			t.Fatalf("%s has %q (refused: %v)", n.name, got, n.rejects)
		}
		last := h[len(h)-1]
		if last.From != bob.addr() || last.FromName != "bob" || !last.Incoming || last.State != chat.StateReceived {
			t.Errorf("%s's record of bob's text: %+v", n.name, last)
		}
	}
	mine := bob.history(t, g.ID)
	if r := mine[len(mine)-1]; r.State != chat.StateDelivered || r.Members[alice.addr()] != chat.StateDelivered || r.Members[carol.addr()] != chat.StateDelivered {
		t.Fatalf("bob's text after delivery: %+v", r)
	}

	// Read receipts: read by one is not yet read by all.
	id := mine[len(mine)-1].ID
	if n, err := carol.groups.MarkRead(g.ID, []string{id}); err != nil || n != 1 {
		t.Fatalf("carol marks read: %d %v", n, err)
	}
	if n, _ := carol.groups.MarkRead(g.ID, []string{id}); n != 0 {
		t.Errorf("marking read twice sent %d more receipts", n)
	}
	net.flush()
	r, _ := bob.groups.records.Load(hexID(t, id))
	if r.Members[carol.addr()] != chat.StateRead || r.State != chat.StateDelivered {
		t.Errorf("after carol read: %+v", r)
	}
	alice.groups.MarkRead(g.ID, []string{id})
	net.flush()
	if r, _ = bob.groups.records.Load(hexID(t, id)); r.State != chat.StateRead {
		t.Errorf("read by everyone, state %q", r.State)
	}

	// Removal: a new epoch for alice and bob; carol is told.
	in, err := alice.groups.Remove("Trip", "carol")
	if err != nil || in.Epoch != 2 || len(in.Members) != 2 {
		t.Fatalf("remove: %+v %v", in, err)
	}
	net.flush()
	if in, _ := bob.groups.Get(g.ID); in.Epoch != 2 || len(in.Members) != 2 {
		t.Errorf("bob after the removal: %+v", in)
	}
	if got := notices(bob.history(t, g.ID)); !slices.Contains(got, "alice removed carol") {
		t.Errorf("bob's notices: %q", got)
	}
	cin, _ := carol.groups.Get(g.ID)
	if !cin.Removed {
		t.Errorf("carol does not know she was removed: %+v", cin)
	}
	if got := notices(carol.history(t, g.ID)); !slices.Contains(got, "alice removed you from the group. You no longer receive its messages.") {
		t.Errorf("carol's notices: %q", got)
	}
	if _, err := alice.groups.Send(g.ID, "carol is gone"); err != nil {
		t.Fatal(err)
	}
	net.flush()
	if got := texts(bob.history(t, g.ID)); !slices.Contains(got, "carol is gone") {
		t.Errorf("bob missed the text after the removal: %q", got)
	}
	if got := texts(carol.history(t, g.ID)); slices.Contains(got, "carol is gone") {
		t.Errorf("carol, removed, got %q", got)
	}
	if _, err := carol.groups.Send(g.ID, "hello?"); err == nil || !strings.Contains(err.Error(), "removed you") {
		t.Errorf("carol writes after her removal: %v", err)
	}
	if _, err := bob.groups.Add(g.ID, "alice"); err == nil || !strings.Contains(err.Error(), "only the owner") {
		t.Errorf("bob changes alice's group: %v", err)
	}
	// Added back: a fresh epoch and key, and a notice.
	if _, err := alice.groups.Add(g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	net.flush()
	if cin, _ := carol.groups.Get(g.ID); cin.Removed || cin.Epoch != 3 {
		t.Errorf("carol added back: %+v", cin)
	}
}

func hexID(t *testing.T, s string) []byte {
	id, err := ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id[:]
}

// TestRemovedMemberCannotReadNewEpoch: a copy of a text of the epoch after
// her removal reaches carol anyway (a member who still lists her, or a
// copy sent by mistake): she holds no key for it and it is not stored.
func TestRemovedMemberCannotReadNewEpoch(t *testing.T) {
	net, alice, bob, carol, g := trio(t)
	if _, err := alice.groups.Remove(g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	net.flush()
	gid, _ := ParseID(g.ID)
	st, _ := bob.groups.loadState(gid)
	key, _ := st.key(2)
	data, _, err := EncodeText(key, gid, 2, bob.id.Address(), 0, "secret plans", strings.NewReader(strings.Repeat("n", 24)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.chat.SendMessage(carol.id.Address(), &message.Message{Type: message.Group, Data: data}, chat.SendOptions{Card: carol.card}); err != nil {
		t.Fatal(err)
	}
	net.flush()
	if !slices.Contains(carol.rejects, "group-removed") {
		t.Errorf("carol's refusals: %v, want group-removed", carol.rejects)
	}
	if got := texts(carol.history(t, g.ID)); slices.Contains(got, "secret plans") {
		t.Fatal("carol stored a text written after her removal")
	}
	// Nor can any key she holds open it, whatever epoch it claims.
	cst, _ := carol.groups.loadState(gid)
	p, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range cst.Keys {
		p.Epoch = k.Epoch
		if _, _, _, err := OpenText(p, [KeySize]byte(k.Key)); !errors.Is(err, ErrForged) {
			t.Errorf("carol's key of epoch %d opens the new-epoch text: %v", k.Epoch, err)
		}
	}
	if _, ok := cst.key(2); ok {
		t.Error("carol holds the key of the epoch that removed her")
	}
}

// TestForgedAndStaleUpdatesRefused: only the owner's signature changes a
// group, and only forward.
func TestForgedAndStaleUpdatesRefused(t *testing.T) {
	net, alice, bob, _, g := trio(t)
	mallory := net.node("mallory")
	mallory.knows(bob)
	gid, _ := ParseID(g.ID)
	bobNow := func() Info { in, _ := bob.groups.Get(g.ID); return in }
	before := bobNow()
	sendAs := func(from *testNode, data []byte) {
		t.Helper()
		if _, err := from.chat.SendMessage(bob.id.Address(), &message.Message{Type: message.Group, Data: data}, chat.SendOptions{}); err != nil {
			t.Fatal(err)
		}
		net.flush()
	}
	lastReject := func() string {
		if len(bob.rejects) == 0 {
			return ""
		}
		return bob.rejects[len(bob.rejects)-1]
	}

	// 1. Mallory's own signed list for alice's group ID.
	mh := mallory.id.MLDSAHash()
	fake := &Membership{Group: gid, Epoch: 9, Name: "Trip", OwnerEd25519: mallory.id.PublicKey(), OwnerMLDSAHash: mh,
		Members: []Member{{Address: mallory.id.Address(), Card: mallory.card.Marshal()}, {Address: bob.id.Address(), Card: bob.card.Marshal()}},
		Key:     [KeySize]byte{1}}
	data, err := EncodeUpdate(mallory.id, fake)
	if err != nil {
		t.Fatal(err)
	}
	sendAs(mallory, data)
	if lastReject() != "forged" {
		t.Errorf("update signed by another owner: refusals %v", bob.rejects)
	}

	// 2. A list naming alice as owner but signed by mallory.
	fake.OwnerEd25519, fake.OwnerMLDSAHash = alice.id.PublicKey(), alice.id.MLDSAHash()
	fake.Members[0] = Member{Address: alice.id.Address(), Card: alice.card.Marshal()}
	body, _ := fake.body()
	forged, _ := encodePacket(signedWire{Kind: uint8(KindUpdate), Body: body,
		Sig: ed25519.Sign(mallory.id.SigningKey(), append([]byte(domainMembership), body...))})
	if _, err := Decode(forged); !errors.Is(err, ErrForged) {
		t.Errorf("Decode of a forged signature: %v", err)
	}
	sendAs(mallory, forged)
	if lastReject() != "forged" {
		t.Errorf("forged signature: refusals %v", bob.rejects)
	}

	// 3. One bit changed in a real update.
	real, _ := EncodeUpdate(alice.id, &Membership{Group: gid, Epoch: 5, Name: "Trip", OwnerEd25519: alice.id.PublicKey(),
		OwnerMLDSAHash: alice.id.MLDSAHash(), Members: fake.Members, Key: [KeySize]byte{2}})
	flipped := slices.Clone(real)
	flipped[len(flipped)-70] ^= 1 // inside the body, before the signature
	if _, err := Decode(flipped); err == nil {
		t.Error("an altered update decodes")
	}

	// 4. The owner's own old epoch again (a replay with a valid signature).
	old := &Membership{Group: gid, Epoch: 1, Name: "Renamed", OwnerEd25519: alice.id.PublicKey(), OwnerMLDSAHash: alice.id.MLDSAHash(),
		Members: fake.Members, Key: [KeySize]byte{3}, Issued: time.Now().UnixMilli()}
	if _, err := alice.groups.Remove(g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	net.flush()
	data, _ = EncodeUpdate(alice.id, old)
	sendAs(alice, data)
	if lastReject() != "stale-membership" {
		t.Errorf("old epoch replayed: refusals %v", bob.rejects)
	}

	// 5. A removal notice for bob signed by mallory.
	rm, _ := EncodeRemoved(mallory.id, &Removal{Group: gid, Epoch: 7, Removed: bob.id.Address(), OwnerEd25519: mallory.id.PublicKey(), OwnerMLDSAHash: mh})
	sendAs(mallory, rm)
	if lastReject() != "forged" {
		t.Errorf("removal by a non-owner: refusals %v", bob.rejects)
	}
	after := bobNow()
	if after.Removed || after.Name != "Trip" || after.Owner != before.Owner || after.Epoch != 2 {
		t.Errorf("bob's group changed by forgeries: before %+v after %+v", before, after)
	}
}

// TestTextsOnlyFromMembersOverTheirOwnSession.
func TestTextsOnlyFromMembersOverTheirOwnSession(t *testing.T) {
	net, alice, bob, carol, g := trio(t)
	gid, _ := ParseID(g.ID)
	cst, _ := carol.groups.loadState(gid)
	key1, _ := cst.key(1)
	if _, err := alice.groups.Remove(g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	net.flush()
	send := func(from, to *testNode, data []byte) {
		t.Helper()
		if _, err := from.chat.SendMessage(to.id.Address(), &message.Message{Type: message.Group, Data: data}, chat.SendOptions{Card: to.card}); err != nil {
			t.Fatal(err)
		}
		net.flush()
	}
	// Carol, removed, still has the epoch-1 key and writes with it.
	data, _, _ := EncodeText(key1, gid, 1, carol.id.Address(), 0, "still here", strings.NewReader(strings.Repeat("a", 24)))
	send(carol, bob, data)
	if !slices.Contains(bob.rejects, "not-a-member") || slices.Contains(texts(bob.history(t, g.ID)), "still here") {
		t.Errorf("text from a removed member: refusals %v", bob.rejects)
	}
	// Bob passes off a text as alice's.
	st, _ := bob.groups.loadState(gid)
	key2, _ := st.key(2)
	data, _, _ = EncodeText(key2, gid, 2, alice.id.Address(), 0, "alice says", strings.NewReader(strings.Repeat("b", 24)))
	alice.knows(bob)
	send(bob, alice, data)
	if !slices.Contains(alice.rejects, "forged") || slices.Contains(texts(alice.history(t, g.ID)), "alice says") {
		t.Errorf("text under another member's name: refusals %v", alice.rejects)
	}
}

// TestTextBeforeItsUpdateWaits: carol, just added, gets bob's text of the
// new epoch before alice's update: it waits, then opens.
func TestTextBeforeItsUpdateWaits(t *testing.T) {
	net := newTestNet(t)
	alice, bob, carol := net.node("alice"), net.node("bob"), net.node("carol")
	alice.knows(bob)
	alice.knows(carol)
	g, err := alice.groups.Create("Late", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	net.flush()
	var held []*bundle.Bundle
	net.drop = func(b *bundle.Bundle) bool {
		if b.Dest == bundle.Addr(carol.id.Address()) {
			held = append(held, b)
			return true
		}
		return false
	}
	if _, err := alice.groups.Add(g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	net.flush()
	if _, err := bob.groups.Send(g.ID, "welcome carol"); err != nil {
		t.Fatal(err)
	}
	net.flush()
	net.drop = nil
	if len(held) != 2 {
		t.Fatalf("%d bundles held for carol, want the update and the text", len(held))
	}
	slices.Reverse(held)
	net.queue = append(net.queue, held...)
	net.flush()
	if got := texts(carol.history(t, g.ID)); !slices.Equal(got, []string{"welcome carol"}) {
		t.Fatalf("carol has %q (refused %v)", got, carol.rejects)
	}
	h := bob.history(t, g.ID)
	if r := h[len(h)-1]; r.Members[carol.addr()] != chat.StateDelivered {
		t.Errorf("bob's text to carol: %+v", r)
	}
	n := 0
	carol.groups.pending.ForEach(func(_, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d texts still held", n)
	}
}

// TestOwnerOperationsExplainMistakes: what a user gets wrong is named.
func TestOwnerOperationsExplainMistakes(t *testing.T) {
	_, alice, _, _, g := trio(t)
	for _, c := range []struct {
		err  error
		want string
	}{
		{func() error { _, err := alice.groups.Create("", nil); return err }(), "name"},
		{func() error { _, err := alice.groups.Create("x", []string{"nobody"}); return err }(), "tern contact add"},
		{func() error { _, err := alice.groups.Add(g.ID, "bob"); return err }(), "already a member"},
		{func() error { _, err := alice.groups.Remove(g.ID, "zed"); return err }(), "not a member"},
		{func() error { _, err := alice.groups.Remove(g.ID, "alice"); return err }(), "cannot remove yourself"},
		{func() error { _, err := alice.groups.Send("nope", "hi"); return err }(), "tern groups"},
		{func() error { _, err := alice.groups.Send(g.ID, ""); return err }(), "empty"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("error %v, want it to mention %q", c.err, c.want)
		}
	}
	solo, err := alice.groups.Create("Solo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.groups.Send(solo.ID, "anyone?"); err == nil || !strings.Contains(err.Error(), "no other members") {
		t.Errorf("send to a group of one: %v", err)
	}
}
