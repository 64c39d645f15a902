package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
	"github.com/ternmesh/tern/store"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sent is one message that went through the fake network.
type sent struct {
	from, to crypto.Address
	msg      any // decoded
	bulk     bool
}

// fakeNet joins Services directly: a message is delivered on its own
// goroutine (as the router's delivery workers would) and retried while the
// receiver answers with a retryable error (as the router would, from its
// store). Hooks drop or change messages.
type fakeNet struct {
	t     *testing.T
	mu    sync.Mutex
	nodes map[crypto.Address]*Service
	log   []sent
	// drop decides whether a message is lost (it still counts as sent).
	drop func(s sent) bool
	// mutate may change a message's Data before delivery.
	mutate func(s sent, data []byte) []byte
	gate   chan struct{} // closed: deliveries go; nil channel: they wait
	busy   atomic.Int64  // deliveries inside Receive
	wg     sync.WaitGroup
}

func newFakeNet(t *testing.T) *fakeNet {
	n := &fakeNet{t: t, nodes: map[crypto.Address]*Service{}, gate: make(chan struct{})}
	close(n.gate)
	t.Cleanup(n.wg.Wait)
	return n
}

type endpoint struct {
	n    *fakeNet
	self crypto.Address
}

func (e endpoint) SendMessage(to crypto.Address, m *message.Message, opt chat.SendOptions) (*bundle.Bundle, error) {
	var id bundle.ID
	rand.Read(id[:])
	p, err := Decode(m.Data)
	if err != nil {
		e.n.t.Errorf("a service sent a message that does not decode: %v", err)
		return nil, err
	}
	s := sent{from: e.self, to: to, msg: p, bulk: opt.Bulk}
	e.n.mu.Lock()
	e.n.log = append(e.n.log, s)
	drop := e.n.drop != nil && e.n.drop(s)
	data := append([]byte(nil), m.Data...)
	if e.n.mutate != nil {
		data = e.n.mutate(s, data)
	}
	e.n.mu.Unlock()
	if !drop {
		e.n.wg.Add(1)
		go e.n.deliver(e.self, to, data)
	}
	return &bundle.Bundle{ID: id}, nil
}

func (n *fakeNet) deliver(from, to crypto.Address, data []byte) {
	defer n.wg.Done()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		gate, svc := n.gate, n.nodes[to]
		n.mu.Unlock()
		<-gate
		n.busy.Add(1)
		err := errors.New("no such node")
		if svc != nil {
			err = svc.Receive(chat.Incoming{From: from, Message: &message.Message{Type: message.File, Data: data}})
		}
		n.busy.Add(-1)
		if err == nil || errors.Is(err, router.ErrRejected) {
			return
		}
		time.Sleep(5 * time.Millisecond) // the router's retry, compressed
	}
}

// pause holds deliveries and waits until none is inside a Receive.
func (n *fakeNet) pause() {
	n.mu.Lock()
	n.gate = make(chan struct{})
	n.mu.Unlock()
	waitUntil(n.t, "deliveries in progress finish", func() bool { return n.busy.Load() == 0 })
}

func (n *fakeNet) resume() {
	n.mu.Lock()
	close(n.gate)
	n.mu.Unlock()
}

func (n *fakeNet) sentLog() []sent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]sent(nil), n.log...)
}

// peer is one Service with its own store and directory.
type peer struct {
	t    *testing.T
	n    *fakeNet
	addr crypto.Address
	dir  string
	st   *store.Store
	svc  *Service
	clk  *clock
	cfg  Config
}

func newPeer(t *testing.T, n *fakeNet, name byte, clk *clock, cfg Config) *peer {
	p := &peer{t: t, n: n, addr: crypto.Address{name}, dir: t.TempDir(), clk: clk, cfg: cfg}
	p.open()
	t.Cleanup(p.close)
	return p
}

func (p *peer) open() {
	p.t.Helper()
	st, err := store.Open(filepath.Join(p.dir, "tern.db"), store.Options{})
	if err != nil {
		p.t.Fatal(err)
	}
	cfg := p.cfg
	cfg.Dir, cfg.Store, cfg.Messenger = filepath.Join(p.dir, "files"), st, endpoint{p.n, p.addr}
	cfg.Now, cfg.Logger = p.clk.Now, slog.New(slog.DiscardHandler)
	svc, err := New(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	p.st, p.svc = st, svc
	p.n.mu.Lock()
	p.n.nodes[p.addr] = svc
	p.n.mu.Unlock()
}

func (p *peer) close() {
	if p.svc == nil {
		return
	}
	p.n.mu.Lock()
	delete(p.n.nodes, p.addr)
	p.n.mu.Unlock()
	p.svc.Close()
	p.st.Close()
	p.svc = nil
}

// restart closes and reopens the service and its store (deliveries must
// be paused).
func (p *peer) restart() {
	p.close()
	p.open()
}

func (p *peer) only(t *testing.T) Transfer {
	t.Helper()
	ts := p.svc.List()
	if len(ts) != 1 {
		t.Fatalf("%d transfers, want 1: %+v", len(ts), ts)
	}
	return ts[0]
}

// pokeAll wakes every pump and ack loop (after the clock moved).
func (s *Service) pokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.transfers {
		poke(t.wake)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sendBytes(t *testing.T, from, to *peer, name string, data []byte, opt SendOptions) Transfer {
	t.Helper()
	ts, err := from.svc.Send([]crypto.Address{to.addr}, name, bytes.NewReader(data), opt)
	if err != nil {
		t.Fatal(err)
	}
	return ts[0]
}

func waitState(t *testing.T, p *peer, state string) Transfer {
	t.Helper()
	var tr Transfer
	waitUntil(t, "a transfer is "+state, func() bool {
		ts := p.svc.List()
		if len(ts) == 0 {
			return false
		}
		tr = ts[len(ts)-1]
		return tr.State == state
	})
	return tr
}

func checkReceived(t *testing.T, p *peer, tr Transfer, want []byte) {
	t.Helper()
	f, v, err := p.svc.Open(tr.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := os.ReadFile(v.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(got), len(want))
	}
}

var _ = context.Background

func deliverRaw(s *Service, from crypto.Address, data []byte) error {
	return s.Receive(chat.Incoming{From: from, Message: &message.Message{Type: message.File, Data: data}})
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		t.Fatalf("bad id %q", s)
	}
	return b
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// inFlight counts the chunks recorded in flight, over all transfers.
func (s *Service) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.transfers {
		t.mu.Lock()
		n += len(t.rec.Flights)
		t.mu.Unlock()
	}
	return n
}

// resent counts chunks sent again, over all transfers.
func (s *Service) resent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.transfers {
		t.mu.Lock()
		n += t.rec.Resent
		t.mu.Unlock()
	}
	return n
}
