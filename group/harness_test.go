package group

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/store"
)

// testNet carries bundles between in-process nodes: Submit queues, flush
// delivers until nothing is left. A filter can drop or hold bundles, to
// test what a member does with copies it should never have had.
type testNet struct {
	t     *testing.T
	mu    sync.Mutex
	nodes map[bundle.Addr]*testNode
	queue []*bundle.Bundle
	drop  func(b *bundle.Bundle) bool
}

type testNode struct {
	name    string
	id      *crypto.Identity
	card    *crypto.Card
	chat    *chat.App
	groups  *Manager
	net     *testNet
	rejects []string // reasons of bundles refused on delivery
}

func newTestNet(t *testing.T) *testNet {
	return &testNet{t: t, nodes: map[bundle.Addr]*testNode{}}
}

type netSubmitter struct{ net *testNet }

func (s netSubmitter) Submit(b *bundle.Bundle) error {
	s.net.mu.Lock()
	s.net.queue = append(s.net.queue, b)
	s.net.mu.Unlock()
	return nil
}

func (s netSubmitter) PathProblem(bundle.Addr, bundle.Kind) string { return "" }

func (n *testNet) node(name string) *testNode {
	n.t.Helper()
	id, err := crypto.GenerateIdentity(rand.Reader)
	if err != nil {
		n.t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(n.t.TempDir(), "tern.db"), store.Options{})
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { st.Close() })
	box, err := crypto.NewBox(id, st.Bucket("sessions"), rand.Reader, time.Now)
	if err != nil {
		n.t.Fatal(err)
	}
	card, err := id.NewCard(name, nil, time.Now(), 24*time.Hour)
	if err != nil {
		n.t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	app := chat.New(chat.Config{Identity: id, Box: box, Store: st, Router: netSubmitter{n}, Logger: quiet})
	tn := &testNode{name: name, id: id, card: card, chat: app, net: n}
	tn.groups = New(Config{Identity: id, Card: func() *crypto.Card { return card }, Chat: app, Store: st, Logger: quiet})
	app.Handle(message.Group, tn.groups)
	n.mu.Lock()
	n.nodes[bundle.Addr(id.Address())] = tn
	n.mu.Unlock()
	return tn
}

// knows makes b a contact of a (a has b's card).
func (a *testNode) knows(b *testNode) {
	a.net.t.Helper()
	if _, err := a.chat.AddContact(b.card, b.name); err != nil {
		a.net.t.Fatal(err)
	}
}

// flush delivers every queued bundle, and whatever those answer, in order.
func (n *testNet) flush() {
	for i := 0; ; i++ {
		if i > 10000 {
			n.t.Fatal("bundles keep coming: a delivery loop")
		}
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			return
		}
		b := n.queue[0]
		n.queue = n.queue[1:]
		dst := n.nodes[b.Dest]
		drop := n.drop
		n.mu.Unlock()
		if dst == nil || drop != nil && drop(b) {
			continue
		}
		if err := dst.chat.Deliver(context.Background(), b); err != nil {
			var re interface{ Reason() string }
			if !errors.As(err, &re) {
				n.t.Fatalf("%s: delivery failed (not a refusal): %v", dst.name, err)
			}
			dst.rejects = append(dst.rejects, re.Reason())
		}
	}
}

func (a *testNode) addr() string { return a.id.Address().String() }

func (a *testNode) history(t *testing.T, g string) []chat.Record {
	t.Helper()
	h, err := a.groups.History(g, 0)
	if err != nil {
		t.Fatalf("%s: history of %s: %v", a.name, g, err)
	}
	return h
}

func texts(recs []chat.Record) []string {
	var out []string
	for _, r := range recs {
		if r.Kind == "" {
			out = append(out, r.Text)
		}
	}
	return out
}

func notices(recs []chat.Record) []string {
	var out []string
	for _, r := range recs {
		if r.Kind == "notice" {
			out = append(out, r.Text)
		}
	}
	return out
}
