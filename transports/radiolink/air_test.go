package radiolink

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// airBundle is a 40-byte text bundle to a destination no radio knows.
func airBundle(t *testing.T) []byte {
	t.Helper()
	b := bundle.Bundle{Version: bundle.Version, Kind: bundle.KindData, Flags: bundle.FlagDerivedID,
		Dest: bundle.Addr{0xde, 0x57}, Created: CreatedEpoch + 86_400_000, Age: 1500,
		Lifetime: 5 * 86_400_000, HopLimit: 32, Payload: bytes.Repeat([]byte("t"), 40)}
	b.ID = bundle.DerivedID(b.Dest, b.Payload)
	raw, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestAiredBundleReachesEveryHearerInOneFrame: one Broadcast from node 0 is
// one frame on air, and each of the three other nodes receives, on its
// link to node 0, the grant note and then the bundle (Age rounded up to
// the compact unit, as for unicast). The share is 1024 copies, over the
// one byte the frame carried until the budgets grew: it arrives whole.
func TestAiredBundleReachesEveryHearerInOneFrame(t *testing.T) {
	s := newSimNet(t, 3, 4, sf9, nil)
	s.meet(t, 10*time.Minute)
	a := s.nodes[0]
	raw := airBundle(t)
	b, _ := bundle.Unmarshal(raw)
	note, err := bundle.AiredNote(b.ID, 1024)
	if err != nil {
		t.Fatal(err)
	}
	before, bytesBefore := a.sim.Stats(), a.radio.Stats().Total.BytesOut
	var l transports.Link = a.links[s.nodes[1].addr]
	bl, ok := l.(transports.BroadcastLink)
	if !ok {
		t.Fatal("a radio link is no transports.BroadcastLink")
	}
	if bl.Channel() != a.links[s.nodes[2].addr].Channel() {
		t.Fatal("two links of one radio report different channels")
	}
	if err := bl.Broadcast(context.Background(), note, raw); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(time.Second) // about 0.3 s of SF9 airtime, and no hello due
	after, bytesAfter := a.sim.Stats(), a.radio.Stats().Total.BytesOut
	if n := after.Sent - before.Sent; n != 1 {
		t.Fatalf("the broadcast took %d frames on air, want 1", n)
	}
	if a.radio.Stats().Total.Aired != 1 {
		t.Fatalf("Aired counter %d, want 1", a.radio.Stats().Total.Aired)
	}
	t.Logf("aired %d-byte bundle (with its %d-byte grant note): %d bytes, %v on air",
		len(raw), len(note), bytesAfter-bytesBefore, after.Airtime-before.Airtime)
	for _, h := range s.nodes[1:] {
		gotNote, ok1 := h.links[a.addr].TryRecv()
		gotRaw, ok2 := h.links[a.addr].TryRecv()
		if !ok1 || !ok2 || !bytes.Equal(gotNote, note) {
			t.Fatalf("hearer %x did not get the grant note then the bundle", h.addr[:2])
		}
		got, err := bundle.Unmarshal(gotRaw)
		if err != nil || got.ID != b.ID || !bytes.Equal(got.Payload, b.Payload) || got.Dest != b.Dest {
			t.Fatalf("hearer %x got a different bundle: %v", h.addr[:2], err)
		}
		if h.radio.Stats().Total.AiredIn != 1 {
			t.Fatalf("hearer %x counted %d aired bundles, want 1", h.addr[:2], h.radio.Stats().Total.AiredIn)
		}
		if _, more := h.links[a.addr].TryRecv(); more {
			t.Fatalf("hearer %x got more than the two frames", h.addr[:2])
		}
	}
}

// TestBroadcastRefusesOtherFrames: only the exact aired note of the
// bundle, in one frame, goes on air; anything else fails with ErrTooBig
// and sends nothing.
func TestBroadcastRefusesOtherFrames(t *testing.T) {
	e, err := NewEngine(Config{Self: addrOf(1), MaxFrame: 255})
	if err != nil {
		t.Fatal(err)
	}
	raw := airBundle(t)
	b, _ := bundle.Unmarshal(raw)
	other, _ := bundle.AiredNote(bundle.ID{9}, 21)
	note, _ := bundle.AiredNote(b.ID, 21)
	big := bundle.Bundle{Version: bundle.Version, Kind: bundle.KindData, Dest: bundle.Addr{1}, ID: bundle.ID{2},
		Lifetime: 60_000, HopLimit: 8, Payload: bytes.Repeat([]byte("x"), 300)}
	bigRaw, _ := big.Marshal()
	bigNote, _ := bundle.AiredNote(big.ID, 21)
	// A grant note of the aired form but not the canonical one (another
	// lifetime): the radio could not rebuild it from the ID and copies.
	p, err := (&bundle.Summary{Flags: bundle.SummaryAired, Grants: []bundle.Grant{{ID: b.ID, Copies: 300}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	odd, err := (&bundle.Bundle{Version: bundle.Version, Kind: bundle.KindSummary, Flags: bundle.FlagDerivedID,
		ID: bundle.DerivedID(bundle.Addr{}, p), Lifetime: 2 * bundle.AiredNoteLifetime, Payload: p}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string][2][]byte{
		"note of another bundle": {other, raw},
		"bundle first":           {raw, note},
		"larger than a frame":    {bigNote, bigRaw},
		"note not canonical":     {odd, raw},
	} {
		if err := e.Broadcast(t0, c[0], c[1]); !errors.Is(err, transports.ErrTooBig) {
			t.Errorf("%s: Broadcast gave %v, want ErrTooBig", name, err)
		}
	}
	if err := e.Broadcast(t0, odd, raw); err == nil || !strings.Contains(err.Error(), "not bundle.AiredNote") {
		t.Errorf("a non-canonical note was refused with %v, want that named", err)
	}
	if n := e.QueuedFrames(); n != 0 {
		t.Fatalf("%d frames queued after refused broadcasts", n)
	}
}

// TestAiredFrameCopies: frame type 7 carries a hearer's share in two
// bytes, big-endian, 1 to bundle.MaxCopies; anything else, and a frame cut
// before its body, is malformed.
func TestAiredFrameCopies(t *testing.T) {
	body := []byte("body")
	for _, c := range []uint16{1, 255, 256, 1024, bundle.MaxCopies} {
		fr := encodeAir(0, addrOf(1), c, false, body)
		f, err := decodeFrame(fr)
		if err != nil || f.typ != ftAir || f.copies != c || !bytes.Equal(f.body, body) {
			t.Fatalf("aired frame of %d copies decodes to %d copies, body %q, %v", c, f.copies, f.body, err)
		}
		if got := len(fr) - len(body); got != 1+linkLens[0]+2 {
			t.Errorf("aired frame header is %d bytes, want %d", got, 1+linkLens[0]+2)
		}
	}
	for name, fr := range map[string][]byte{
		"0 copies":        encodeAir(0, addrOf(1), 0, false, body),
		"over MaxCopies":  encodeAir(0, addrOf(1), bundle.MaxCopies+1, false, body),
		"no body":         encodeAir(0, addrOf(1), 21, false, nil),
		"one copies byte": encodeAir(0, addrOf(1), 21, false, body)[:1+linkLens[0]+1],
	} {
		if _, err := decodeFrame(fr); !errors.Is(err, errMalformed) {
			t.Errorf("%s: decodeFrame gave %v, want errMalformed", name, err)
		}
	}
}
