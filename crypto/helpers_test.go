package crypto

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

// memKV is an in-memory KV. A "crash" is simply dropping the Box that uses
// it: whatever was Put is what survives. failPuts makes Put fail.
type memKV struct {
	mu       sync.Mutex
	m        map[string][]byte
	puts     int
	failPuts bool
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(key []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[string(key)]
	if !ok {
		return nil, nil
	}
	return bytes.Clone(v), nil
}

func (k *memKV) Put(key, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failPuts {
		return errors.New("disk full")
	}
	k.puts++
	k.m[string(key)] = bytes.Clone(value)
	return nil
}

func (k *memKV) Delete(key []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, string(key))
	return nil
}

func (k *memKV) ForEach(fn func(k, v []byte) error) error {
	k.mu.Lock()
	keys := make([]string, 0, len(k.m))
	for key := range k.m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	snap := make([][2][]byte, len(keys))
	for i, key := range keys {
		snap[i] = [2][]byte{[]byte(key), bytes.Clone(k.m[key])}
	}
	k.mu.Unlock()
	for _, kv := range snap {
		if err := fn(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

func (k *memKV) clone() *memKV {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := newMemKV()
	for key, v := range k.m {
		c.m[key] = bytes.Clone(v)
	}
	return c
}

func (k *memKV) setFail(f bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failPuts = f
}

func (k *memKV) putCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.puts
}

// testNow is the fixed clock of the tests and vectors.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// seededReader is deterministic randomness.
func seededReader(seed byte) *rand.ChaCha8 {
	var s [32]byte
	for i := range s {
		s[i] = seed
	}
	return rand.NewChaCha8(s)
}

func seedOf(b byte) []byte { return bytes.Repeat([]byte{b}, SeedSize) }

// peer is one side of a test conversation.
type peer struct {
	id   *Identity
	card *Card
	kv   *memKV
	box  *Box
	clk  *clock
}

func newPeer(t testing.TB, seed byte, name string, clk *clock) *peer {
	t.Helper()
	id, err := IdentityFromSeed(seedOf(seed))
	if err != nil {
		t.Fatal(err)
	}
	card, err := id.NewCard(name, []string{"quic://" + name + ".example:4242"}, clk.now(), 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{id: id, card: card, kv: newMemKV(), clk: clk}
	p.box, err = NewBox(id, p.kv, seededReader(seed), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// restart drops the Box without any shutdown and loads a new one from the KV.
func (p *peer) restart(t testing.TB) {
	t.Helper()
	b, err := NewBox(p.id, p.kv, seededReader(0xEE), p.clk.now)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	p.box = b
}

func (p *peer) addr() Address { return p.id.Address() }

func mustSeal(t testing.TB, from, to *peer, msg string) []byte {
	t.Helper()
	sealed, err := from.box.Seal(to.addr(), to.card, []byte(msg))
	if err != nil {
		t.Fatalf("seal %q: %v", msg, err)
	}
	return sealed
}

func mustOpen(t testing.TB, p *peer, sealed []byte, wantFrom *peer, want string) Opened {
	t.Helper()
	o, err := p.box.Open(sealed)
	if err != nil {
		t.Fatalf("open %q: %v", want, err)
	}
	if o.From != wantFrom.addr() || string(o.Plaintext) != want {
		t.Fatalf("opened from %s %q, want from %s %q", o.From.Short(), o.Plaintext, wantFrom.addr().Short(), want)
	}
	return o
}

func pair(t testing.TB) (alice, bob *peer, clk *clock) {
	clk = &clock{t: testNow}
	return newPeer(t, 0xA1, "alice", clk), newPeer(t, 0xB0, "bob", clk), clk
}

func hkdfExpandForTest(prk []byte, info string) ([]byte, error) {
	return hkdf.Expand(sha256.New, prk, info, 32)
}
