package call

import (
	"bytes"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
)

// clock is a manual clock shared by the parties of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// memKV is an in-memory History.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newKV() *memKV { return &memKV{m: map[string][]byte{}} }
func (k *memKV) Get(key []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[string(key)], nil
}
func (k *memKV) Put(key, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[string(key)] = append([]byte(nil), v...)
	return nil
}
func (k *memKV) ForEach(fn func(k, v []byte) error) error {
	k.mu.Lock()
	keys := make([]string, 0, len(k.m))
	for key := range k.m {
		keys = append(keys, key)
	}
	k.mu.Unlock()
	sort.Strings(keys)
	for _, key := range keys {
		v, _ := k.Get([]byte(key))
		if err := fn([]byte(key), v); err != nil {
			return err
		}
	}
	return nil
}

// signal is one call message in flight between two parties.
type signal struct {
	from, to crypto.Address
	data     []byte
}

// net carries the signals (as bundles would: held until the test
// delivers them) and the voice frames (at once, or held for latency) of
// a test's parties.
type net struct {
	t       *testing.T
	clock   *clock
	parties map[crypto.Address]*party
	mu      sync.Mutex
	mail    []signal
	frames  []frame
	holdMs  time.Duration // voice latency: frames wait for deliverFrames
	// drop, when set, says whether the n-th frame (from 0) from a party is lost.
	drop func(from crypto.Address, n int) bool
	sent map[crypto.Address]int
	// path is the VoicePath answer for a destination (nil: a path exists).
	path map[crypto.Address]error
}

type frame struct {
	from, to crypto.Address
	p        []byte
}

type party struct {
	name string
	addr crypto.Address
	app  *App
	kv   *memKV
	net  *net
	h    func(from bundle.Addr, p []byte)
	// payloads records every voice payload this party sent.
	payloads [][]byte
}

func newNet(t *testing.T) *net {
	return &net{t: t, clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		parties: map[crypto.Address]*party{}, sent: map[crypto.Address]int{}, path: map[crypto.Address]error{}}
}

func (n *net) party(name string) *party {
	n.t.Helper()
	var addr crypto.Address
	copy(addr[:], bytes.Repeat([]byte(name[:1]), len(addr)))
	p := &party{name: name, addr: addr, kv: newKV(), net: n}
	n.parties[addr] = p
	p.start()
	return p
}

// start (re)opens the party's App on its history.
func (p *party) start() {
	p.net.t.Helper()
	app, err := New(Config{Chat: p, Voice: p, History: p.kv, Now: p.net.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		p.net.t.Fatal(err)
	}
	p.app = app
	p.net.t.Cleanup(app.Close)
}

// Chat, for the party's App.
func (p *party) SendMessage(to crypto.Address, m *message.Message, _ chat.SendOptions) (*bundle.Bundle, error) {
	if m.Type != message.Call {
		return nil, fmt.Errorf("a %s message from the call app", m.Type)
	}
	p.net.mu.Lock()
	p.net.mail = append(p.net.mail, signal{from: p.addr, to: to, data: append([]byte(nil), m.Data...)})
	p.net.mu.Unlock()
	return &bundle.Bundle{}, nil
}

func (p *party) Resolve(who string) (chat.Contact, *crypto.Card, error) {
	for addr, q := range p.net.parties {
		if strings.EqualFold(q.name, who) || addr.String() == who {
			return chat.Contact{Name: q.name, Address: addr.String()}, nil, nil
		}
	}
	return chat.Contact{}, nil, fmt.Errorf("no contact %q", who)
}

// Voice, for the party's App.
func (p *party) SendVoice(dest bundle.Addr, payload []byte) error {
	if err := p.VoicePath(dest); err != nil {
		return err
	}
	n := p.net
	n.mu.Lock()
	i := n.sent[p.addr]
	n.sent[p.addr]++
	p.payloads = append(p.payloads, append([]byte(nil), payload...))
	lost := n.drop != nil && n.drop(p.addr, i)
	hold := n.holdMs > 0
	if !lost && hold {
		n.frames = append(n.frames, frame{p.addr, crypto.Address(dest), append([]byte(nil), payload...)})
	}
	n.mu.Unlock()
	if !lost && !hold {
		n.parties[crypto.Address(dest)].h(bundle.Addr(p.addr), append([]byte(nil), payload...))
	}
	return nil
}

func (p *party) VoicePath(dest bundle.Addr) error {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	return p.net.path[crypto.Address(dest)]
}

func (p *party) OnVoice(h func(from bundle.Addr, payload []byte)) { p.h = h }

// deliver hands every signal in flight to its recipient, aged by age, and
// repeats until none is left (answers to answers included).
func (n *net) deliver(age time.Duration) {
	n.t.Helper()
	for {
		n.mu.Lock()
		mail := n.mail
		n.mail = nil
		n.mu.Unlock()
		if len(mail) == 0 {
			return
		}
		for _, s := range mail {
			to := n.parties[s.to]
			in := chat.Incoming{From: s.from, Message: &message.Message{Type: message.Call, Data: s.data},
				Bundle: &bundle.Bundle{Age: uint64(age / time.Millisecond)}}
			if err := to.app.Receive(in); err != nil {
				n.t.Fatalf("%s refused a signal: %v", to.name, err)
			}
		}
	}
}

// held takes every signal in flight out of the network (an outage: the
// bundles wait in a store); resend puts them back.
func (n *net) held() []signal {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.mail
	n.mail = nil
	return out
}

func (n *net) resend(s []signal) {
	n.mu.Lock()
	n.mail = append(n.mail, s...)
	n.mu.Unlock()
}

// deliverFrames hands over the frames held for latency.
func (n *net) deliverFrames() {
	n.mu.Lock()
	fs := n.frames
	n.frames = nil
	n.mu.Unlock()
	for _, f := range fs {
		n.parties[f.to].h(bundle.Addr(f.from), f.p)
	}
}

func (p *party) only(t *testing.T) Record {
	t.Helper()
	h, err := p.app.History("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 {
		t.Fatalf("%s has %d calls in the history, want 1: %+v", p.name, len(h), h)
	}
	return h[0]
}

func mustID(t *testing.T, r Record) ID {
	t.Helper()
	id, err := ParseID(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// drainFrames takes what a stream has queued.
func drainFrames(s *Stream) []Frame {
	var out []Frame
	for {
		select {
		case f := <-s.Frames():
			out = append(out, f)
		default:
			return out
		}
	}
}
