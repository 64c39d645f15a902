package crypto

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzWorld is a deterministic conversation: Bob's stored state after Alice
// set up a session and heard back, and real payloads addressed to Bob.
type fuzzWorld struct {
	bob   *Identity
	alice Address
	kv    *memKV
	seeds [][]byte
}

func newFuzzWorld(t testing.TB) fuzzWorld {
	alice, bob, _ := pair(t)
	pending := mustSeal(t, alice, bob, "pending init")
	first := mustSeal(t, alice, bob, "first")
	mustOpen(t, bob, first, alice, "first")
	mustOpen(t, alice, mustSeal(t, bob, alice, "ok"), bob, "ok")
	short := mustSeal(t, alice, bob, "short message")
	ahead := mustSeal(t, alice, bob, "")
	for range 20 {
		ahead = mustSeal(t, alice, bob, "a bit later")
	}
	if err := alice.box.Rekey(bob.addr(), bob.card); err != nil {
		t.Fatal(err)
	}
	fresh := mustSeal(t, alice, bob, "fresh session")
	return fuzzWorld{
		bob: bob.id, alice: alice.addr(), kv: bob.kv.clone(),
		seeds: [][]byte{pending, short, ahead, fresh},
	}
}

// FuzzOpen feeds arbitrary payloads to a Box holding a real session. The
// inputs are large (cards, inits), so fuzz with -fuzzminimizetime=0:
// minimizing them otherwise stalls the run.
func FuzzOpen(f *testing.F) {
	w := newFuzzWorld(f)
	for _, s := range w.seeds {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{typeMsg, 1, 2, 3})
	f.Add([]byte{0x7f, 0, 0})
	now := func() time.Time { return testNow }
	f.Fuzz(func(t *testing.T, data []byte) {
		box, err := NewBox(w.bob, w.kv.clone(), seededReader(1), now)
		if err != nil {
			t.Fatal(err)
		}
		o, err := box.Open(data)
		if err != nil {
			known := []error{ErrNoSession, ErrReplay, ErrForged, ErrMalformed, ErrStalePrekey}
			for _, k := range known {
				if errors.Is(err, k) {
					return
				}
			}
			t.Fatalf("Open error wraps no sentinel: %v", err)
		}
		if o.From != w.alice {
			t.Fatalf("opened a payload from %s, only alice has sessions", o.From)
		}
		if _, err := box.Open(data); !errors.Is(err, ErrReplay) {
			t.Fatalf("second Open of the same payload: %v, want ErrReplay", err)
		}
	})
}

// FuzzParseCard checks ParseCard never panics and accepts only canonical
// encodings (run it with -fuzzminimizetime=0, see FuzzOpen).
func FuzzParseCard(f *testing.F) {
	alice, _, _ := pair(f)
	good := alice.card.Marshal()
	compact := alice.card.MarshalCompact()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(compact)
	f.Add(compact[:len(compact)/2])
	f.Add([]byte{0x8b})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCard(data, testNow)
		if err != nil {
			if !errors.Is(err, ErrCardInvalid) && !errors.Is(err, ErrCardExpired) {
				t.Fatalf("ParseCard error wraps neither ErrCardInvalid nor ErrCardExpired: %v", err)
			}
			return
		}
		if string(c.Marshal()) != string(data) {
			t.Fatal("a parsed card does not re-encode to its input")
		}
		if _, err := ParseCardURI(c.URI(), testNow); err != nil {
			t.Fatalf("URI of a parsed card does not parse: %v", err)
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	f.Add("133cb316f6503ac5714bc6ada6a11d4c")
	f.Add("133CB316F6503AC5714BC6ADA6A11D4C")
	f.Add("")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if a.String() != strings.ToLower(s) {
			t.Fatalf("ParseAddress(%q).String() = %q", s, a.String())
		}
	})
}

// TestWriteFuzzCorpus rewrites the committed seed corpora with -update.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	w := newFuzzWorld(t)
	alice, _, _ := pair(t)
	card := alice.card.Marshal()
	compact := alice.card.MarshalCompact()
	corpora := map[string][]string{
		"FuzzParseAddress": {fmt.Sprintf("string(%q)", alice.addr().String()), `string("not hex at all, 32 characters..")`},
		"FuzzParseCard": {fmt.Sprintf("[]byte(%q)", card), fmt.Sprintf("[]byte(%q)", card[:100]),
			fmt.Sprintf("[]byte(%q)", compact), fmt.Sprintf("[]byte(%q)", compact[:100])},
	}
	for _, s := range w.seeds {
		corpora["FuzzOpen"] = append(corpora["FuzzOpen"], fmt.Sprintf("[]byte(%q)", s))
	}
	for name, entries := range corpora {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, e := range entries {
			body := "go test fuzz v1\n" + e + "\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestFuzzSeedsOpen keeps the FuzzOpen seeds meaningful: each real payload
// opens on Bob's stored state (so mutations explore past the parsers).
func TestFuzzSeedsOpen(t *testing.T) {
	w := newFuzzWorld(t)
	for i, s := range w.seeds {
		box, err := NewBox(w.bob, w.kv.clone(), seededReader(1), func() time.Time { return testNow })
		if err != nil {
			t.Fatal(err)
		}
		if o, err := box.Open(s); err != nil || o.From != w.alice {
			t.Fatalf("seed %d: %+v, %v", i, o, err)
		}
	}
}
