package node

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/transports"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startNode opens a node in dir, listening on the mem network under name.
func startNode(t *testing.T, net *transports.MemNetwork, dir, name string, links ...string) *Node {
	t.Helper()
	n, err := Open(Config{DataDir: dir, Name: name, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	self := [16]byte(n.Identity().Address())
	mn := net.WithSelf(self)
	ln, err := mn.Listen(name, self)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(Links{Dialers: map[string]transports.Dialer{"mem": mn}, Listeners: []transports.Listener{ln}}, links); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestIdentitySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	n, err := Open(Config{DataDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	addr := n.Identity().Address()
	n.Close()
	n, err = Open(Config{DataDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Identity().Address() != addr {
		t.Fatal("a restart changed the node's identity")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "identity.seed")); fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestDamagedIdentityExplained(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "identity.seed"), []byte("not hex\n"), 0o600)
	_, err := Open(Config{DataDir: dir, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("error %v, want it to say the file is damaged and how to recover", err)
	}
}

func TestSecondNodeOnSameDataRefused(t *testing.T) {
	dir := t.TempDir()
	n, err := Open(Config{DataDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	_, err = Open(Config{DataDir: dir, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v, want an 'in use' error", err)
	}
}

func waitEvent(t *testing.T, ch <-chan chat.Event, ok func(chat.Event) bool) chat.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-ch:
			if ok(e) {
				return e
			}
		case <-timeout:
			t.Fatal("timed out waiting for an event")
		}
	}
}

// TestChatStatesAndReceipts: a message goes queued -> forwarded ->
// delivered on the sender, arrives once on the recipient, and a link
// remembered with AddPeer comes back after a restart.
func TestChatStatesAndReceipts(t *testing.T) {
	net := transports.NewMemNetwork(transports.MemNetworkConfig{})
	a := startNode(t, net, t.TempDir(), "alice")
	b := startNode(t, net, t.TempDir(), "bob")
	if _, err := a.Chat().AddContact(b.Card(), ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aEv, bEv := a.Chat().Subscribe(ctx), b.Chat().Subscribe(ctx)

	rec, err := a.Chat().Send("bob", "are you safe?")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != chat.StateQueued {
		t.Fatalf("state %q, want queued", rec.State)
	}
	if err := a.AddPeer("mem://bob"); err != nil {
		t.Fatal(err)
	}
	in := waitEvent(t, bEv, func(e chat.Event) bool { return e.Type == "message" })
	if in.Message.Text != "are you safe?" || in.Message.Peer != a.Identity().Address().String() {
		t.Fatalf("bob got %+v", in.Message)
	}
	var states []string
	waitEvent(t, aEv, func(e chat.Event) bool {
		states = append(states, e.Message.State)
		return e.Message.State == chat.StateDelivered
	})
	if states[0] != chat.StateForwarded {
		t.Errorf("states seen %v, want forwarded before delivered", states)
	}
	// Bob answers without having alice as a contact: the session knows her.
	if _, err := b.Chat().Send(a.Identity().Address().String(), "yes"); err != nil {
		t.Fatalf("reply to a non-contact who wrote first: %v", err)
	}
	back := waitEvent(t, aEv, func(e chat.Event) bool { return e.Type == "message" })
	if back.Message.Text != "yes" || back.Message.PeerName != "bob" {
		t.Errorf("alice got %+v", back.Message)
	}
	if hist, _ := b.Chat().History("", 0); len(hist) != 2 {
		t.Errorf("bob's history has %d messages, want 2", len(hist))
	}
}

func TestSavedLinkReconnectsAfterRestart(t *testing.T) {
	net := transports.NewMemNetwork(transports.MemNetworkConfig{})
	dirA := t.TempDir()
	a := startNode(t, net, dirA, "alice")
	b := startNode(t, net, t.TempDir(), "bob")
	if err := a.AddPeer("mem://bob"); err != nil {
		t.Fatal(err)
	}
	up := func(n *Node) func() bool {
		return func() bool {
			for _, p := range n.Router().Peers() {
				if p.URL == "mem://bob" && p.State == "up" {
					return true
				}
			}
			return false
		}
	}
	waitUntil(t, "the link is up", up(a))
	a.Close()
	a2, err := Open(Config{DataDir: dirA, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	self := [16]byte(a2.Identity().Address())
	if err := a2.Start(Links{Dialers: map[string]transports.Dialer{"mem": net.WithSelf(self)}}, nil); err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	waitUntil(t, "the saved link reconnects", up(a2))
	_ = b
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

// TestOverAirClearMessage: a message the user marked --over-air-clear
// arrives marked as unencrypted, signed by its author, and its receipt
// comes back the same way.
func TestOverAirClearMessage(t *testing.T) {
	net := transports.NewMemNetwork(transports.MemNetworkConfig{})
	a := startNode(t, net, t.TempDir(), "alice")
	b := startNode(t, net, t.TempDir(), "bob")
	a.Chat().AddContact(b.Card(), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aEv, bEv := a.Chat().Subscribe(ctx), b.Chat().Subscribe(ctx)
	if err := a.AddPeer("mem://bob"); err != nil {
		t.Fatal(err)
	}
	rec, err := a.Chat().SendWith("bob", "CQ CQ de alice", chat.SendOptions{OverAirClear: true})
	if err != nil || !rec.Clear {
		t.Fatalf("send: %+v %v", rec, err)
	}
	in := waitEvent(t, bEv, func(e chat.Event) bool { return e.Type == "message" })
	if !in.Message.Clear || in.Message.Text != "CQ CQ de alice" || in.Message.Peer != a.Identity().Address().String() {
		t.Fatalf("bob got %+v, want a clear, signed message from alice", in.Message)
	}
	waitEvent(t, aEv, func(e chat.Event) bool { return e.Message.State == chat.StateDelivered })
}

type appInbox chan chat.Incoming

func (c appInbox) Receive(in chat.Incoming) error { c <- in; return nil }

// TestApplicationMessages: an application's message (here a file-type
// payload) is sealed, carried and handed to the handler registered for its
// type, with the authenticated sender; a type nobody handles is refused.
func TestApplicationMessages(t *testing.T) {
	net := transports.NewMemNetwork(transports.MemNetworkConfig{})
	a := startNode(t, net, t.TempDir(), "alice")
	b := startNode(t, net, t.TempDir(), "bob")
	a.Chat().AddContact(b.Card(), "")
	inbox := make(appInbox, 1)
	b.Chat().Handle(message.File, inbox)
	if err := a.AddPeer("mem://bob"); err != nil {
		t.Fatal(err)
	}
	sent, err := a.Chat().SendMessage(b.Identity().Address(), &message.Message{Type: message.File, Data: []byte("chunk 1")}, chat.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-inbox:
		if string(in.Message.Data) != "chunk 1" || in.From != a.Identity().Address() || in.Bundle.ID != sent.ID || in.Clear {
			t.Fatalf("bob's file handler got %+v from %s", in.Message, in.From.Short())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the file message never reached bob's handler")
	}
	// Bob's call app cannot parse this call message: the router counts
	// the refusal by reason.
	if _, err := a.Chat().SendMessage(b.Identity().Address(), &message.Message{Type: message.Call, Data: []byte{1}}, chat.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bob refuses the call message", func() bool {
		return b.Router().Metrics().Rejected["malformed"] > 0
	})
}

// flaky fails its first delivery with a temporary error (a full disk,
// say), then takes messages.
type flaky struct {
	failed bool
	got    chan chat.Incoming
}

func (f *flaky) Receive(in chat.Incoming) error {
	if !f.failed {
		f.failed = true
		return errors.New("disk full")
	}
	f.got <- in
	return nil
}

// TestTemporaryHandlerFailureRetried: an application that fails to store
// a message gets it again on the router's next attempt, although the
// session has consumed its key (a second Open would be a replay).
func TestTemporaryHandlerFailureRetried(t *testing.T) {
	net := transports.NewMemNetwork(transports.MemNetworkConfig{})
	a := startNode(t, net, t.TempDir(), "alice")
	b := startNode(t, net, t.TempDir(), "bob")
	a.Chat().AddContact(b.Card(), "")
	h := &flaky{got: make(chan chat.Incoming, 1)}
	b.Chat().Handle(message.File, h)
	if err := a.AddPeer("mem://bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Chat().SendMessage(b.Identity().Address(), &message.Message{Type: message.File, Data: []byte("chunk")}, chat.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-h.got:
		if string(in.Message.Data) != "chunk" {
			t.Fatalf("retried delivery carried %q", in.Message.Data)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the message never reached the handler after its first failure (rejected: %v)", b.Router().Metrics().Rejected)
	}
	if n := b.Router().Metrics().Rejected["replayed"]; n != 0 {
		t.Errorf("%d deliveries refused as replays", n)
	}
}
