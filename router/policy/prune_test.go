package policy

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// forged is the i-th of many made-up source addresses.
func forged(i int) bundle.Addr {
	var a bundle.Addr
	a[0] = 'F'
	binary.BigEndian.PutUint32(a[1:], uint32(i))
	return a
}

// TestLimiterForgetsFullBuckets: a sender forging a new address for every
// bundle leaves no trace once the buckets have refilled, while a
// neighbour that drained its bucket stays limited through the sweeps.
func TestLimiterForgetsFullBuckets(t *testing.T) {
	l := NewLimiter(0.5, 30)
	t0 := time.Unix(1_700_000_000, 0)
	flooder := bundle.Addr{'X'}
	for range 30 {
		l.Allow(flooder, t0)
	}
	for i := range 10_000 {
		if !l.Allow(forged(i), t0.Add(time.Second)) {
			t.Fatalf("forged address %d refused: its first bundle has a full bucket", i)
		}
	}
	if l.Allow(flooder, t0.Add(time.Second)) {
		t.Fatal("the neighbour that drained its bucket a second ago was let through after the sweeps")
	}
	// 60 s later every bucket has refilled (30 at 0.5/s).
	l.Allow(forged(-1), t0.Add(62*time.Second))
	if n := len(l.b); n > sweepMin {
		t.Errorf("the limiter still tracks %d neighbours after their buckets refilled, want at most %d", n, sweepMin)
	}
	if len(l.b) == 0 || l.b[forged(-1)] == nil {
		t.Error("the newest neighbour's bucket is gone")
	}
}

// TestFloodWatchForgetsTheQuiet: refusals from many forged addresses are
// forgotten once their window has passed; a neighbour judged flooding is
// not forgotten while the judgement lasts.
func TestFloodWatchForgetsTheQuiet(t *testing.T) {
	w := NewFloodWatch()
	t0 := time.Unix(1_700_000_000, 0)
	liar := bundle.Addr{'L'}
	for i := range w.Refusals {
		w.Refused(liar, t0.Add(time.Duration(i)*time.Second))
	}
	for i := range 10_000 {
		w.Refused(forged(i), t0.Add(time.Minute))
	}
	if !w.Flooding(liar, t0.Add(2*time.Minute)) {
		t.Fatal("the sweeps forgot a neighbour judged flooding")
	}
	// Past the liar's window (it began at t0) but within its judgement
	// (until 10 min after its last refusal, at t0+19s): a sweep must keep it.
	at := t0.Add(10*time.Minute + 5*time.Second)
	for i := range 20_001 {
		w.Refused(forged(10_000+i), at)
	}
	if !w.Flooding(liar, at) {
		t.Fatal("a sweep after the liar's window forgot it while it is still judged flooding")
	}
	w.Refused(forged(-1), t0.Add(21*time.Minute))
	if n := len(w.per); n > sweepMin {
		t.Errorf("the watch still tracks %d neighbours 10 min after their last refusal, want at most %d", n, sweepMin)
	}
}
