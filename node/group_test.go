package node

import (
	"context"
	"net/url"
	"slices"
	"testing"

	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/transports"
)

// loraLink is an in-memory link that says it is a LoRa radio, so the test
// can see the medium reach the message records.
type loraLink struct{ transports.Link }

func (loraLink) Medium() string { return transports.MediumLoRa }

type loraDialer struct{ *transports.MemNetwork }

func (d loraDialer) Dial(ctx context.Context, u *url.URL) (transports.Link, error) {
	l, err := d.MemNetwork.Dial(ctx, u)
	if err != nil {
		return nil, err
	}
	return loraLink{l}, nil
}

type loraListener struct{ *transports.MemListener }

func (l loraListener) Accept(ctx context.Context) (transports.Link, error) {
	k, err := l.MemListener.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return loraLink{k}, nil
}

// startLoRaNode is startNode with links that report the LoRa medium.
func startLoRaNode(t *testing.T, net *transports.MemNetwork, name string) *Node {
	t.Helper()
	n, err := Open(Config{DataDir: t.TempDir(), Name: name, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	self := [16]byte(n.Identity().Address())
	mn := net.WithSelf(self)
	ln, err := mn.Listen(name, self)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(Links{Dialers: map[string]transports.Dialer{"mem": loraDialer{mn}}, Listeners: []transports.Listener{loraListener{ln}}}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestReadReceiptAndPath: a 1:1 message is sent "via LoRa" (the first
// hop's medium), arrives marked with the medium it came on, and turns read
// on the sender once the recipient's UI marks it read.
func TestReadReceiptAndPath(t *testing.T) {
	net := transports.NewMemNetwork(transports.MemNetworkConfig{})
	a, b := startLoRaNode(t, net, "alice"), startLoRaNode(t, net, "bob")
	a.Chat().AddContact(b.Card(), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aEv, bEv := a.Chat().Subscribe(ctx), b.Chat().Subscribe(ctx)
	if err := a.AddPeer("mem://bob"); err != nil {
		t.Fatal(err)
	}
	rec, err := a.Chat().Send("bob", "over the hill")
	if err != nil {
		t.Fatal(err)
	}
	fwd := waitEvent(t, aEv, func(e chat.Event) bool { return e.Message.ID == rec.ID && e.Message.Via != "" })
	if fwd.Message.Path != transports.MediumLoRa {
		t.Errorf("sent message's path %q, want lora", fwd.Message.Path)
	}
	in := waitEvent(t, bEv, func(e chat.Event) bool { return e.Type == "message" })
	if in.Message.Path != transports.MediumLoRa || in.Message.State != chat.StateReceived {
		t.Errorf("bob's record %+v, want received over lora", in.Message)
	}
	waitEvent(t, aEv, func(e chat.Event) bool { return e.Message.ID == rec.ID && e.Message.State == chat.StateDelivered })
	if n, err := b.Chat().MarkRead(a.Identity().Address().String(), []string{in.Message.ID}); err != nil || n != 1 {
		t.Fatalf("mark read: %d %v", n, err)
	}
	waitEvent(t, aEv, func(e chat.Event) bool { return e.Message.ID == rec.ID && e.Message.State == chat.StateRead })
	unknown := rec.ID[:len(rec.ID)-2] + "00"
	if unknown == rec.ID {
		unknown = rec.ID[:len(rec.ID)-2] + "01" // one ID in 256 ends in 00 already
	}
	if _, err := b.Chat().MarkRead(a.Identity().Address().String(), []string{unknown}); err == nil {
		t.Error("marking an unknown message read is not an error")
	}
}

// TestGroupOfThreeOverARelay: alice links to bob and to carol (links that
// say they are LoRa); bob and carol have no link and no contact with each
// other, so bob's group text reaches carol through alice's router, sealed
// to carol with the card the membership carried. Receipts come back, the
// path is recorded on both ends; after carol's removal she gets nothing
// new and knows she was removed.
func TestGroupOfThreeOverARelay(t *testing.T) {
	net := transports.NewMemNetwork(transports.MemNetworkConfig{})
	a, b, c := startLoRaNode(t, net, "alice"), startLoRaNode(t, net, "bob"), startLoRaNode(t, net, "carol")
	a.Chat().AddContact(b.Card(), "bob")
	a.Chat().AddContact(c.Card(), "carol")
	for _, u := range []string{"mem://bob", "mem://carol"} {
		if err := a.AddPeer(u); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bEv, cEv := b.Chat().Subscribe(ctx), c.Chat().Subscribe(ctx)
	g, err := a.Groups().Create("Hut", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bob and carol are members", func() bool {
		ib, eb := b.Groups().Get(g.ID)
		ic, ec := c.Groups().Get(g.ID)
		return eb == nil && ec == nil && len(ib.Members) == 3 && len(ic.Members) == 3
	})
	waitUntil(t, "bob reaches carol through alice", func() bool {
		for _, r := range b.Router().Routes() {
			if r.Dest == [16]byte(c.Identity().Address()) {
				return true
			}
		}
		return false
	})
	rec, err := b.Groups().Send("Hut", "stove is lit")
	if err != nil {
		t.Fatal(err)
	}
	in := waitEvent(t, cEv, func(e chat.Event) bool { return e.Type == "message" && e.Message.Kind == "" })
	if in.Message.Text != "stove is lit" || in.Message.From != b.Identity().Address().String() || in.Message.FromName != "bob" || in.Message.Peer != g.ID || in.Message.Path != transports.MediumLoRa {
		t.Fatalf("carol got %+v", in.Message)
	}
	waitEvent(t, bEv, func(e chat.Event) bool { return e.Message.ID == rec.ID && e.Message.State == chat.StateDelivered })
	for _, n := range []*Node{a, c} {
		h, _ := n.Groups().History(g.ID, 0)
		if _, err := n.Groups().MarkRead(g.ID, []string{h[len(h)-1].ID}); err != nil {
			t.Fatal(err)
		}
	}
	read := waitEvent(t, bEv, func(e chat.Event) bool { return e.Message.ID == rec.ID && e.Message.State == chat.StateRead })
	if len(read.Message.Members) != 2 || read.Message.Path != transports.MediumLoRa {
		t.Errorf("bob's record %+v, want two recipients, both read, sent via LoRa", read.Message)
	}

	if _, err := a.Groups().Remove(g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "carol learns she was removed", func() bool { ic, _ := c.Groups().Get(g.ID); return ic.Removed })
	waitUntil(t, "bob is in epoch 2", func() bool { ib, _ := b.Groups().Get(g.ID); return ib.Epoch == 2 })
	after, err := a.Groups().Send(g.ID, "carol left")
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Members) != 1 {
		t.Errorf("the text after the removal goes to %v, want bob only", after.Members)
	}
	waitEvent(t, bEv, func(e chat.Event) bool { return e.Type == "message" && e.Message.Text == "carol left" })
	h, _ := c.Groups().History(g.ID, 0)
	var got []string
	for _, r := range h {
		got = append(got, r.Text)
	}
	if slices.Contains(got, "carol left") || !slices.Contains(got, "alice removed you from the group. You no longer receive its messages.") {
		t.Errorf("carol's history: %q", got)
	}
}
