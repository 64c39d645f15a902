package group

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ternmesh/tern/crypto"
)

// TestAudienceAndJudge: the audience of a file is the current members but
// the sender; a receiver believes a group label from a current member,
// waits on a label newer than its membership, and refuses one from a
// removed member (and once it is removed itself); OnChange fires on every
// membership change.
func TestAudienceAndJudge(t *testing.T) {
	net := newTestNet(t)
	a, b, c := net.node("alice"), net.node("bob"), net.node("carol")
	var mu sync.Mutex
	changes := 0
	b.groups.cfg.OnChange = func(ID) { mu.Lock(); changes++; mu.Unlock() }
	a.knows(b)
	a.knows(c)
	in, err := a.groups.Create("Hut", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := ParseID(in.ID)
	aud, err := a.groups.Audience("hut")
	if err != nil || aud.ID != g || aud.Name != "Hut" || aud.Epoch != 1 || len(aud.Members) != 2 ||
		!slices.Contains(aud.Members, b.id.Address()) || !slices.Contains(aud.Members, c.id.Address()) {
		t.Fatalf("audience %+v, %v; want bob and carol at epoch 1", aud, err)
	}
	// Before the invitation arrives bob cannot judge the label.
	if st, _, _ := b.groups.Judge(g, 1, a.id.Address()); st != Behind {
		t.Errorf("bob before the invitation: %v, want Behind", st)
	}
	net.flush()
	if st, name, _ := b.groups.Judge(g, 1, c.id.Address()); st != CurrentMember || name != "Hut" {
		t.Errorf("carol's label on bob: %v %q, want a member of Hut", st, name)
	}
	if st, _, _ := b.groups.Judge(g, 2, a.id.Address()); st != Behind {
		t.Errorf("a label of epoch 2 while bob holds 1: %v, want Behind", st)
	}
	// carol is not a contact of bob: the membership gives her card.
	if name, card := b.groups.MemberCard(c.id.Address()); card == nil || card.Address() != c.id.Address() || name != "carol" {
		t.Errorf("bob's card of carol: %q %v", name, card)
	}
	if _, card := b.groups.MemberCard(crypto.Address{1}); card != nil {
		t.Error("a card for someone in no group")
	}

	if _, err := a.groups.Remove("Hut", "carol"); err != nil {
		t.Fatal(err)
	}
	net.flush()
	aud, err = a.groups.Audience("Hut")
	if err != nil || aud.Epoch != 2 || !slices.Equal(aud.Members, []crypto.Address{b.id.Address()}) {
		t.Errorf("after carol's removal the audience is %+v, %v; want bob alone at epoch 2", aud, err)
	}
	st, _, why := b.groups.Judge(g, 1, c.id.Address())
	if st != Outside || !strings.Contains(why, "not a member") {
		t.Errorf("carol's old label after her removal: %v %q", st, why)
	}
	if st, _, why := c.groups.Judge(g, 1, a.id.Address()); st != Outside || !strings.Contains(why, "removed you") {
		t.Errorf("alice's label on removed carol: %v %q", st, why)
	}
	if _, err := c.groups.Audience("Hut"); err == nil || !strings.Contains(err.Error(), "removed you") {
		t.Errorf("removed carol's audience: %v", err)
	}
	mu.Lock()
	if changes != 2 {
		t.Errorf("OnChange ran %d times on bob, want 2 (joined, carol removed)", changes)
	}
	mu.Unlock()
	if _, err := a.groups.Audience("nope"); err == nil || !strings.Contains(err.Error(), "no group") {
		t.Errorf("unknown group: %v", err)
	}
}
