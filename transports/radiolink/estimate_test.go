package radiolink

import (
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/lora/radiosim"
)

// fixedAirtime counts every frame as 100 ms on air.
type fixedAirtime struct{}

func (fixedAirtime) TimeOnAir(n int) time.Duration { return 100 * time.Millisecond }

func TestEstimateAirtimeCountsFragments(t *testing.T) {
	r, err := New(Config{Self: addrOf(0), MaxFrame: 255, Airtime: fixedAirtime{}}, simClock{radiosim.NewClock(t0)}, Hooks{Transmit: func([]byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := newLink(r, addrOf(1))
	// With no neighbour state the worst-case header (16-byte link
	// addresses) applies: 255-39 = 216 bytes of data per frame.
	if got := l.EstimateAirtime(216 * 10); got != time.Second {
		t.Errorf("10 full fragments: %v, want 1s", got)
	}
	if got := l.EstimateAirtime(216*10 + 1); got != 1100*time.Millisecond {
		t.Errorf("one byte more: %v, want 1.1s (an 11th frame)", got)
	}
	if got := l.EstimateAirtime(0); got != 0 {
		t.Errorf("nothing: %v", got)
	}
}

// A bulk bundle has no bit in the compact header: it goes as a raw frame,
// so its flag survives the hop.
func TestBulkBundleNotCompacted(t *testing.T) {
	dst := addrOf(1)
	b := bundle.Bundle{Version: 1, Kind: bundle.KindData, Flags: bundle.FlagBulk, Dest: dst, ID: bundle.ID{1},
		Lifetime: 3_600_000, HopLimit: 8, Payload: []byte("chunk")}
	raw, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := compactBundle(raw, dst, newBook(addrOf(0)), false); ok {
		t.Fatal("a bulk bundle was compacted: the compact header would lose its flag")
	}
}
