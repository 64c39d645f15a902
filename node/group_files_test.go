package node

import (
	"bytes"
	"crypto/rand"
	"os"
	"testing"

	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/transports"
)

// receivedIn returns n's received transfers named name (done or not).
func receivedIn(n *Node, name string) []files.Transfer {
	var out []files.Transfer
	for _, t := range n.Files().List() {
		if t.Incoming && t.Name == name {
			out = append(out, t)
		}
	}
	return out
}

// waitReceived waits until n holds the file name, received and checked,
// and returns it.
func waitReceived(t *testing.T, n *Node, who, name string) files.Transfer {
	t.Helper()
	var got files.Transfer
	waitUntil(t, who+" has "+name, func() bool {
		ts := receivedIn(n, name)
		if len(ts) == 1 && ts[0].State == files.StateDone {
			got = ts[0]
		}
		return got.ID != ""
	})
	return got
}

func sameBytes(t *testing.T, who string, tr files.Transfer, want []byte) {
	t.Helper()
	got, err := os.ReadFile(tr.Path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s's %s: %v, %d bytes, identical %v", who, tr.Name, err, len(got), bytes.Equal(got, want))
	}
}

// TestGroupFilesReachTheCurrentMembers: alice creates a group with bob and
// carol and at once sends it a file (the offers race the invitations); both
// receive identical bytes, shown under the group, and alice's two transfers
// form one batch that ends delivered to both. bob sends the group a file:
// carol, no contact of his and linked only through alice, gets it with the
// card the membership carries. After carol's removal the next file goes to
// bob alone.
func TestGroupFilesReachTheCurrentMembers(t *testing.T) {
	net := transports.NewMemNetwork(transports.MemNetworkConfig{})
	fc := files.Config{ChunkSize: 16 << 10}
	log := failureLog(t)
	a := openNode(t, net, t.TempDir(), "alice", fc, log)
	b := openNode(t, net, t.TempDir(), "bob", fc, log)
	c := openNode(t, net, t.TempDir(), "carol", fc, log)
	a.Chat().AddContact(b.Card(), "bob")
	a.Chat().AddContact(c.Card(), "carol")
	for _, u := range []string{"mem://bob", "mem://carol"} {
		if err := a.AddPeer(u); err != nil {
			t.Fatal(err)
		}
	}
	g, err := a.Groups().Create("Hut", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	plan := make([]byte, 300<<10+17) // 19 chunks
	rand.Read(plan)
	sent, err := a.SendGroupFile("Hut", "plan.pdf", bytes.NewReader(plan), files.SendOptions{})
	if err != nil || len(sent) != 2 || sent[0].Batch == "" || sent[0].Batch != sent[1].Batch || sent[0].Group != g.ID {
		t.Fatalf("send to the group: %v %+v", err, sent)
	}
	for _, x := range []struct {
		who string
		n   *Node
	}{{"bob", b}, {"carol", c}} {
		got := waitReceived(t, x.n, x.who, "plan.pdf")
		sameBytes(t, x.who, got, plan)
		waitUntil(t, x.who+" shows it under the group", func() bool {
			got = receivedIn(x.n, "plan.pdf")[0]
			return got.Group == g.ID
		})
		if got.GroupName != "Hut" || got.PeerName == "" || got.Note != "" {
			t.Errorf("%s's copy: %+v; want it in Hut, from a named sender, no note", x.who, got)
		}
	}
	waitUntil(t, "alice's batch is delivered to both", func() bool {
		bt := files.Combine(a.Files().List())
		return bt.State == files.StateDone && bt.Delivered == 2 && bt.Bytes == bt.Total && bt.Total == 2*int64(len(plan))
	})

	// bob to the group: carol is not his contact and he has no link to her.
	notes := []byte("bob's packing list")
	if _, err := b.SendGroupFile(g.ID, "list.txt", bytes.NewReader(notes), files.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitReceived(t, c, "carol", "list.txt")
	sameBytes(t, "carol", got, notes)
	if got.Group != g.ID || got.Peer != b.Identity().Address().String() || got.PeerName != "bob" {
		t.Errorf("carol's copy of bob's file: %+v; want it in the group, from bob (named by the membership)", got)
	}
	waitReceived(t, a, "alice", "list.txt")

	// After the removal, the next file reaches only bob.
	if _, err := a.Groups().Remove("Hut", "carol"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "carol knows she was removed", func() bool {
		in, err := c.Groups().Get(g.ID)
		return err == nil && in.Removed
	})
	after := []byte("written after carol left")
	sent, err = a.SendGroupFile("Hut", "after.txt", bytes.NewReader(after), files.SendOptions{})
	if err != nil || len(sent) != 1 || sent[0].Peer != b.Identity().Address().String() {
		t.Fatalf("send after the removal: %v %+v; want one transfer, to bob", err, sent)
	}
	got = waitReceived(t, b, "bob", "after.txt")
	sameBytes(t, "bob", got, after)
	if got.Group != g.ID {
		t.Errorf("bob's copy after the removal is not in the group: %+v", got)
	}
	waitUntil(t, "alice sees it delivered", func() bool {
		tr, err := a.Files().Get(sent[0].ID)
		return err == nil && tr.State == files.StateDone
	})
	if ts := receivedIn(c, "after.txt"); len(ts) != 0 {
		t.Errorf("carol, removed, was offered the file sent after: %+v", ts)
	}
	if _, err := c.SendGroupFile("Hut", "x.txt", bytes.NewReader([]byte("x")), files.SendOptions{}); err == nil {
		t.Error("removed carol could send a file to the group")
	}
}
