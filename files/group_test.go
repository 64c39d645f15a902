package files

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ternmesh/tern/crypto"
)

// roster is a Groups for tests: per group, the epoch this node holds and
// its members (this node included); a group it was removed from is
// marked.
type roster struct {
	mu      sync.Mutex
	epoch   map[[16]byte]uint64
	members map[[16]byte][]crypto.Address
	removed map[[16]byte]bool
}

func newRoster() *roster {
	return &roster{epoch: map[[16]byte]uint64{}, members: map[[16]byte][]crypto.Address{}, removed: map[[16]byte]bool{}}
}

func (r *roster) set(g [16]byte, epoch uint64, members ...crypto.Address) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epoch[g], r.members[g] = epoch, members
}

func (r *roster) remove(g [16]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed[g] = true
}

func (r *roster) Judge(g [16]byte, epoch uint64, who crypto.Address) Judgement {
	r.mu.Lock()
	defer r.mu.Unlock()
	held, ok := r.epoch[g]
	switch {
	case !ok || epoch > held:
		return Judgement{Verdict: GroupBehind}
	case r.removed[g]:
		return Judgement{Verdict: GroupOutside, Name: "Hut", Why: "you were removed from it"}
	}
	for _, m := range r.members[g] {
		if m == who {
			return Judgement{Verdict: GroupMember, Name: "Hut"}
		}
	}
	return Judgement{Verdict: GroupOutside, Name: "Hut", Why: "they are not a member of it"}
}

var hut = [16]byte{'h', 'u', 't'}

func groupOpt(epoch uint64) SendOptions {
	return SendOptions{Group: hut, GroupEpoch: epoch, GroupName: "Hut"}
}

// incomingFrom waits for the done transfer b received from sender.
func incomingFrom(t *testing.T, b *peer, from *peer) Transfer {
	t.Helper()
	var got Transfer
	waitUntil(t, "the file from "+string(from.addr[0])+" is received", func() bool {
		for _, tr := range b.svc.List() {
			if tr.Incoming && tr.Peer == from.addr.String() && tr.State == StateDone {
				got = tr
				return true
			}
		}
		return false
	})
	return got
}

// TestGroupLabelOnlyFromMembers: a file sent to a group reaches every
// member with the group on it; the receiver believes the label only from
// a current member of the group (a stranger's or a removed member's file
// is kept as a 1:1 file, with a note saying why); a label newer than the
// membership held waits, shown 1:1, until the membership catches up.
func TestGroupLabelOnlyFromMembers(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	groups := newRoster()
	cfgB := smallCfg
	cfgB.Groups = groups
	a, b, c := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, cfgB), newPeer(t, net, 'c', clk, smallCfg)
	m := newPeer(t, net, 'm', clk, smallCfg)
	groups.set(hut, 3, a.addr, b.addr, c.addr)

	// From a member, to two members: one batch, the group on each side.
	data := randomBytes(10_000)
	ts, err := a.svc.Send([]crypto.Address{b.addr, c.addr}, "map.png", bytes.NewReader(data), groupOpt(3))
	if err != nil || len(ts) != 2 || ts[0].Batch == "" || ts[0].Batch != ts[1].Batch || ts[0].Group != hex.EncodeToString(hut[:]) || ts[0].GroupName != "Hut" {
		t.Fatalf("group send: %v %+v", err, ts)
	}
	got := incomingFrom(t, b, a)
	checkReceived(t, b, got, data)
	if got.Group != hex.EncodeToString(hut[:]) || got.GroupName != "Hut" || got.Note != "" {
		t.Errorf("bob's copy from member alice: group %q %q, note %q; want it in Hut", got.Group, got.GroupName, got.Note)
	}
	// carol follows no groups: the same file is a 1:1 file there.
	if got := incomingFrom(t, c, a); got.Group != "" || !strings.Contains(got.Note, "does not follow groups") {
		t.Errorf("carol's copy: group %q, note %q", got.Group, got.Note)
	}
	waitUntil(t, "alice's batch is delivered", func() bool {
		b := Combine(a.svc.List())
		return b.State == StateDone && b.Delivered == 2 && b.Bytes == 20_000 && b.Total == 20_000
	})

	// From someone who is not a member: received, kept 1:1, and bob is
	// told why.
	stray := randomBytes(5000)
	if _, err := m.svc.Send([]crypto.Address{b.addr}, "notice.pdf", bytes.NewReader(stray), groupOpt(3)); err != nil {
		t.Fatal(err)
	}
	got = incomingFrom(t, b, m)
	checkReceived(t, b, got, stray)
	if got.Group != "" || got.GroupName != "" || !strings.Contains(got.Note, `to the group "Hut", but they are not a member of it`) {
		t.Errorf("bob's copy from stranger m: group %q %q, note %q; want a 1:1 file with the reason", got.Group, got.GroupName, got.Note)
	}

	// A label of epoch 4 while bob holds 3: pending, shown 1:1; once bob
	// holds epoch 4 with the sender in it, the file moves to the group.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := b.svc.Subscribe(ctx)
	if _, err := c.svc.Send([]crypto.Address{b.addr}, "late.txt", bytes.NewReader([]byte("added in epoch 4")), groupOpt(4)); err != nil {
		t.Fatal(err)
	}
	got = incomingFrom(t, b, c)
	if got.Group != "" || !strings.Contains(got.Note, "has not reached this node yet") {
		t.Errorf("a label newer than bob's membership: group %q, note %q; want pending, shown 1:1", got.Group, got.Note)
	}
	groups.set(hut, 4, a.addr, b.addr, c.addr)
	b.svc.GroupsChanged()
	waitUntil(t, "an event shows the file moved into the group", func() bool {
		for {
			select {
			case e := <-events:
				if e.File.ID == got.ID && e.File.Group != "" {
					if e.File.GroupName != "Hut" || e.File.Note != "" {
						t.Errorf("after the membership caught up: %+v", e.File)
					}
					return true
				}
			default:
				return false
			}
		}
	})
	// Judged once: a later change does not take it out again.
	groups.remove(hut)
	b.svc.GroupsChanged()
	net.pause()
	b.restart()
	net.resume()
	for _, tr := range b.svc.List() {
		if tr.Peer == c.addr.String() && tr.Group == "" {
			t.Errorf("the file accepted into the group left it after a restart: %+v", tr)
		}
	}

	// Once bob was removed, even a member's label is not believed.
	if _, err := a.svc.Send([]crypto.Address{b.addr}, "after.txt", bytes.NewReader([]byte("after")), groupOpt(4)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bob has after.txt", func() bool {
		for _, tr := range b.svc.List() {
			if tr.Name == "after.txt" && tr.State == StateDone {
				got = tr
				return true
			}
		}
		return false
	})
	if got.Group != "" || !strings.Contains(got.Note, "removed from it") {
		t.Errorf("a file to removed bob: group %q, note %q", got.Group, got.Note)
	}
}

func TestGroupOfferWire(t *testing.T) {
	o := Offer{ID: [16]byte{1}, Size: 3, ChunkSize: 10, Chunks: 1, Name: "a.txt", Group: hut, GroupEpoch: 7}
	b, err := o.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(b)
	if err != nil || *p.(*Offer) != o {
		t.Fatalf("round trip: %v %+v", err, p)
	}
	plain := o
	plain.Group, plain.GroupEpoch = [16]byte{}, 0
	pb, _ := plain.Marshal()
	if len(b) != len(pb)+25 || !bytes.Equal(b[:len(pb)], pb) {
		t.Errorf("the group extension is not 25 bytes appended to the plain offer: %x vs %x", b, pb)
	}
	for what, bad := range map[string][]byte{
		"tag":         append(append([]byte{}, pb...), append([]byte{0x02}, b[len(pb)+1:]...)...),
		"short":       b[:len(b)-1],
		"long":        append(append([]byte{}, b...), 0),
		"zero group":  append(append(append([]byte{}, pb...), 0x01), make([]byte, 24)...),
		"zero epoch":  append(append([]byte{}, b[:len(b)-8]...), make([]byte, 8)...),
		"lone byte":   append(append([]byte{}, pb...), 0x01),
		"mime length": append(append([]byte{}, pb[:len(pb)-1]...), 0x30),
	} {
		if _, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %x decoded (%v)", what, bad, err)
		}
	}
	if _, err := (&Offer{ID: [16]byte{1}, ChunkSize: 1, Name: "a", Group: hut}).Marshal(); err == nil {
		t.Error("a group offer with epoch 0 encoded")
	}
}

func TestCombine(t *testing.T) {
	tr := func(state string, bytes int64) Transfer {
		return Transfer{Batch: "b", Group: "g", GroupName: "Hut", Name: "f", Size: 100, Bytes: bytes, State: state}
	}
	for _, c := range []struct {
		ts        []Transfer
		state     string
		delivered int
		bytes     int64
	}{
		{[]Transfer{tr(StateQueued, 0), tr(StateQueued, 0)}, StateQueued, 0, 0},
		{[]Transfer{tr(StateSending, 40), tr(StateQueued, 0)}, StateSending, 0, 40},
		{[]Transfer{tr(StateDone, 100), tr(StateSending, 50)}, StateSending, 1, 150},
		{[]Transfer{tr(StateDone, 100), tr(StateFailed, 20)}, StateFailed, 1, 120},
		{[]Transfer{tr(StateDone, 100), tr(StateDone, 100)}, StateDone, 2, 200},
	} {
		b := Combine(c.ts)
		if b.State != c.state || b.Delivered != c.delivered || b.Bytes != c.bytes || b.Total != 200 || b.Members != 2 || b.GroupName != "Hut" {
			t.Errorf("Combine(%v) = %+v", c.ts, b)
		}
	}
}
