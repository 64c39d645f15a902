package region

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type tx struct {
	start time.Time
	toa   time.Duration
}

// maxInWindow returns the largest airtime found in any window of length w.
// The maximum is reached with a window starting at some start or ending at
// some end, so those are the only candidates.
func maxInWindow(txs []tx, w time.Duration) time.Duration {
	occ := func(a time.Time) time.Duration {
		e := a.Add(w)
		var sum time.Duration
		for _, x := range txs {
			lo, hi := x.start, x.start.Add(x.toa)
			if lo.Before(a) {
				lo = a
			}
			if hi.After(e) {
				hi = e
			}
			if hi.After(lo) {
				sum += hi.Sub(lo)
			}
		}
		return sum
	}
	var best time.Duration
	for _, x := range txs {
		best = max(best, occ(x.start), occ(x.start.Add(x.toa).Add(-w)))
	}
	return best
}

// saturate sends frames of the sizes given by next at the earliest allowed
// time until the virtual clock passes end.
func saturate(t *testing.T, b *Budget, c *fakeClock, end time.Time, next func() time.Duration) []tx {
	t.Helper()
	var txs []tx
	for {
		toa := next()
		at, ok := b.Reserve(toa)
		if !ok {
			t.Fatalf("frame of %v refused", toa)
		}
		if at.Before(c.t) {
			t.Fatalf("Reserve returned %v, before now %v", at, c.t)
		}
		if at.After(end) {
			return txs
		}
		c.t = at
		if err := b.Commit(at, toa); err != nil {
			t.Fatalf("Commit at Reserve's time failed: %v", err)
		}
		txs = append(txs, tx{at, toa})
	}
}

func eu1pct(t *testing.T) SubBand {
	r, _ := Lookup("EU868")
	b, err := r.Band(868_100_000)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBudgetEU868SaturatedTenMinutes(t *testing.T) {
	// SF9/125k CR4/5, 197 B: 984.064 ms on air, the largest SF9 frame under 1 s.
	p := airtime.Params{SF: 9, BandwidthHz: 125000, CR: 1, CRC: true}
	toa := p.TimeOnAir(197)
	if toa != 984064*time.Microsecond {
		t.Fatalf("frame is %v", toa)
	}
	c := &fakeClock{t0}
	b := NewBudget(eu1pct(t), c.now)
	txs := saturate(t, b, c, t0.Add(10*time.Minute), func() time.Duration { return toa })

	// 36 s per hour at 1 %: floor(36 s / 984.064 ms) = 36 whole frames fit,
	// 35.426304 s, all sent back to back at the start of the hour.
	if len(txs) != 36 {
		t.Fatalf("sent %d frames in 10 minutes, want 36", len(txs))
	}
	used := time.Duration(len(txs)) * toa
	if used != 35426304*time.Microsecond || used < 35*time.Second {
		t.Errorf("used %v", used)
	}
	if txs[35].start != t0.Add(35*toa) {
		t.Errorf("frames were not sent back to back: last at %v", txs[35].start.Sub(t0))
	}
	if m := maxInWindow(txs, time.Hour); m > 36*time.Second {
		t.Errorf("a 1-hour window holds %v > 36s", m)
	}
	c.t = t0.Add(10 * time.Minute)
	if got := b.Used(time.Hour); got != used {
		t.Errorf("Used(1h) = %v, want %v", got, used)
	}
	if got, want := b.Remaining(), 36*time.Second-used; got != want {
		t.Errorf("Remaining = %v, want %v", got, want)
	}
	// The next frame may start when the first has slid out of the window far
	// enough: exactly one hour after the first started, minus the leftover
	// allowance (0.573696 s) that is already free.
	next := b.NextFree(toa)
	if want := t0.Add(time.Hour - (36*time.Second - used)); !next.Equal(want) {
		t.Errorf("NextFree = +%v, want +%v", next.Sub(t0), want.Sub(t0))
	}
	if b.Len() != 1 {
		t.Errorf("back-to-back frames should merge into one record, have %d", b.Len())
	}
}

func TestBudgetEU868RandomFramesThreeHours(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := airtime.Params{SF: 10, BandwidthHz: 125000, CR: 1, CRC: true}
	c := &fakeClock{t0}
	band := eu1pct(t)
	b := NewBudget(band, c.now)
	end := t0.Add(3 * time.Hour)
	var txs []tx
	maxLen := 0
	for {
		toa := p.TimeOnAir(1 + rng.IntN(255))
		at, ok := b.Reserve(toa)
		if !ok {
			t.Fatal("refused")
		}
		// Sometimes the sender idles before sending.
		if rng.IntN(3) == 0 {
			at = at.Add(time.Duration(rng.IntN(120)) * time.Second)
		}
		if at.After(end) {
			break
		}
		c.t = at
		if err := b.Commit(at, toa); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx{at, toa})
		maxLen = max(maxLen, b.Len())
	}
	m := maxInWindow(txs, time.Hour)
	if m > 36*time.Second {
		t.Fatalf("a 1-hour window holds %v", m)
	}
	if m < 34*time.Second {
		t.Errorf("budget underused: busiest hour holds only %v", m)
	}
	if maxLen > 200 {
		t.Errorf("budget kept %d records: pruning does not work", maxLen)
	}
	t.Logf("%d frames in 3 h, busiest hour %v, at most %d records", len(txs), m, maxLen)
}

func TestBudgetUS915Dwell(t *testing.T) {
	us, _ := Lookup("US915")
	band, _ := us.Band(903_900_000)
	c := &fakeClock{t0}
	b := NewBudget(band, c.now)
	p := airtime.Params{SF: 7, BandwidthHz: 125000, CR: 1, CRC: true}
	toa := p.TimeOnAir(100) // 174.336 ms
	txs := saturate(t, b, c, t0.Add(5*time.Minute), func() time.Duration { return toa })
	if m := maxInWindow(txs, 20*time.Second); m > 400*time.Millisecond {
		t.Fatalf("a 20 s window holds %v > 400ms", m)
	}
	// Two frames (348.672 ms) fit in 400 ms; the third may start once the
	// first has left the window: 20 s after the first ended, minus the
	// 51.328 ms of leftover allowance, then the pattern repeats.
	if txs[1].start != t0.Add(toa) {
		t.Errorf("second frame at +%v", txs[1].start.Sub(t0))
	}
	if want := t0.Add(toa + 20*time.Second - (400*time.Millisecond - 2*toa) - toa); txs[2].start != want {
		t.Errorf("third frame at +%v, want +%v", txs[2].start.Sub(t0), want.Sub(t0))
	}
	if len(txs) < 28 {
		t.Errorf("only %d frames in 5 minutes", len(txs))
	}
	// A frame longer than the dwell limit can never be sent.
	long := airtime.Params{SF: 10, BandwidthHz: 125000, CR: 1, CRC: true}.TimeOnAir(50)
	if long <= 400*time.Millisecond {
		t.Fatalf("test frame too short: %v", long)
	}
	if at, ok := b.Reserve(long); ok || !at.IsZero() {
		t.Errorf("frame of %v accepted at %v", long, at)
	}
	if !b.NextFree(long).IsZero() {
		t.Errorf("NextFree should be zero for a frame that never fits")
	}
}

func TestBudgetCommitViolations(t *testing.T) {
	c := &fakeClock{t0}
	b := NewBudget(eu1pct(t), c.now)
	if err := b.Commit(t0, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(t0.Add(10*time.Second), time.Second); err == nil {
		t.Errorf("overlapping commit accepted")
	}
	if err := b.Commit(t0.Add(time.Minute), 10*time.Second); err == nil {
		t.Errorf("commit beyond 36 s per hour accepted")
	}
	if b.Violations() != 2 {
		t.Errorf("violations = %d", b.Violations())
	}
	c.t = t0.Add(2 * time.Minute)
	if got := b.Used(time.Hour); got != 41*time.Second {
		t.Errorf("violating airtime must still be counted: Used = %v", got)
	}
	if b.Remaining() != 0 {
		t.Errorf("Remaining = %v, want 0", b.Remaining())
	}
	// An in-flight transmission pushes the next start to its end.
	c2 := &fakeClock{t0}
	b2 := NewBudget(SubBand{Name: "free"}, c2.now)
	_ = b2.Commit(t0, time.Second)
	if at, ok := b2.Reserve(time.Second); !ok || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("Reserve during own transmission = %v %v", at, ok)
	}
	if b2.Remaining() != time.Duration(1<<63-1) {
		t.Errorf("unlimited band Remaining = %v", b2.Remaining())
	}
	// Unlimited bands still forget old records.
	c2.t = t0.Add(2 * time.Hour)
	if b2.Used(3*time.Hour) != 0 || b2.Len() != 0 {
		t.Errorf("old records kept")
	}
}

func TestBudgetTenPercentManySmallFrames(t *testing.T) {
	r, _ := Lookup("EU868")
	band, _ := r.Band(869_525_000)
	c := &fakeClock{t0}
	b := NewBudget(band, c.now)
	p := airtime.Params{SF: 7, BandwidthHz: 250000, CR: 1, CRC: true}
	toa := p.TimeOnAir(20)
	// Leave a 1 ms gap after each frame so records cannot merge.
	var n int
	for c.t.Before(t0.Add(2 * time.Hour)) {
		at, _ := b.Reserve(toa)
		c.t = at
		if err := b.Commit(at, toa); err != nil {
			t.Fatal(err)
		}
		n++
		c.t = c.t.Add(toa + time.Millisecond)
	}
	if b.Used(time.Hour) > 360*time.Second {
		t.Errorf("10%% band used %v in an hour", b.Used(time.Hour))
	}
	if b.Len() > int(360*time.Second/toa)+2 {
		t.Errorf("records %d exceed one hour of frames", b.Len())
	}
	t.Logf("%d frames of %v in 2 h, %d records kept", n, toa, b.Len())
}

// TestBudgetDutyLeft: the share of the hourly allowance left falls as
// airtime is spent and comes back as the window slides; a dwell-only band
// never reports itself spent.
func TestBudgetDutyLeft(t *testing.T) {
	eu, _ := Lookup("EU868")
	band, _ := eu.Band(868_100_000) // 1 %: 36 s per hour
	c := &fakeClock{t0}
	b := NewBudget(band, c.now)
	if l := b.DutyLeft(); l != 1 {
		t.Fatalf("fresh budget has %v left, want 1", l)
	}
	if err := b.Commit(t0, 9*time.Second); err != nil {
		t.Fatal(err)
	}
	c.t = t0.Add(10 * time.Second)
	if l := b.DutyLeft(); l < 0.749 || l > 0.751 {
		t.Fatalf("after 9 s of 36 s: %v left, want 0.75", l)
	}
	c.t = t0.Add(time.Hour + 10*time.Second)
	if l := b.DutyLeft(); l != 1 {
		t.Fatalf("an hour later: %v left, want 1", l)
	}
	us, _ := Lookup("US915")
	ub, _ := us.Band(903_900_000)
	d := NewBudget(ub, c.now)
	_ = d.Commit(c.t, 300*time.Millisecond)
	if l := d.DutyLeft(); l != 1 {
		t.Fatalf("dwell-only band reports %v left, want 1", l)
	}
}
