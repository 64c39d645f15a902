package region

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// Budget accounts the airtime of one transmitter against the limits of one
// sub-band: its duty cycle over a rolling window (one hour for ETSI bands) and
// its dwell limit over a rolling window (US915: 400 ms per 20 s). "Rolling"
// means the limit holds for every window of that length, wherever it starts;
// airtime that straddles a window edge counts for the part inside.
//
// The duty cycle applies to a whole sub-band, while the FCC dwell limit
// applies per channel: a sender that hops channels in a dwell-limited band
// keeps one Budget per channel.
//
// Use: Reserve (or NextFree) tells when a frame of a given time on air may
// start; the caller waits until then, sends, and calls Commit with the real
// start time. Transmissions of one Budget never overlap (one radio is half
// duplex), so Reserve never returns a time before the end of the last
// committed transmission.
//
// Memory is bounded: transmissions that ended more than the longest limit
// window (at least one hour) ago are dropped, and back-to-back transmissions
// are merged. A Budget is safe for concurrent use.
type Budget struct {
	band     SubBand
	now      func() time.Time
	duty     limit
	dwell    limit
	retain   time.Duration
	mu       sync.Mutex
	spans    []span        // sorted by start, merged when touching
	total    time.Duration // sum of spans' lengths
	lastEnd  time.Time
	violated int
}

// limit is "at most max of airtime in any window of length window"; max 0 is none.
type limit struct {
	max, window time.Duration
}

type span struct{ start, end time.Time }

// NewBudget returns an empty budget for band. now is the clock (time.Now
// when nil); inject a virtual clock in tests and simulations.
func NewBudget(band SubBand, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	b := &Budget{band: band, now: now, retain: time.Hour}
	if l := band.DutyLimit(); l > 0 {
		b.duty = limit{max: l, window: band.dutyWindow()}
	}
	if band.DwellLimit > 0 && band.DwellWindow > 0 {
		b.dwell = limit{max: band.DwellLimit, window: band.DwellWindow}
	}
	for _, l := range []limit{b.duty, b.dwell} {
		if l.window > b.retain {
			b.retain = l.window
		}
	}
	return b
}

// Band returns the sub-band this budget enforces.
func (b *Budget) Band() SubBand { return b.band }

// Reserve returns the earliest start time, not before now, at which a
// transmission of toa stays within every limit of the band. It records
// nothing: call Commit once the frame is really sent. ok is false when a
// single frame of toa can never fit (it is longer than the dwell limit or the
// duty-cycle allowance); at is then the zero Time.
func (b *Budget) Reserve(toa time.Duration) (at time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.prune(now)
	return b.earliest(now, toa)
}

// ReserveAt is Reserve at a given instant, for callers that keep their own
// clock (the radio link layer decides at its own "now"; asking the budget's
// clock a moment later would always answer "a moment later").
func (b *Budget) ReserveAt(now time.Time, toa time.Duration) (at time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	return b.earliest(now, toa)
}

// NextFree is Reserve without ok: the zero Time means "never".
func (b *Budget) NextFree(toa time.Duration) time.Time {
	at, _ := b.Reserve(toa)
	return at
}

// Commit records a transmission of toa that started at start. It records the
// airtime even when the transmission broke a limit or overlapped an earlier
// one (the air was used either way) and then returns an error saying so;
// such errors are programming mistakes in the caller (sending without
// Reserve, or before the time it gave).
func (b *Budget) Commit(start time.Time, toa time.Duration) error {
	if toa <= 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(b.now())
	var err error
	if start.Before(b.lastEnd) {
		err = fmt.Errorf("transmission at %s overlaps the previous one, which ends at %s: wait for Reserve's start time", start.Format(time.RFC3339Nano), b.lastEnd.Format(time.RFC3339Nano))
	} else if at, ok := b.earliest(start, toa); !ok || at.After(start) {
		err = fmt.Errorf("transmission of %v at %s exceeds the limits of %s (duty %g, dwell %v per %v): wait until Reserve's start time",
			toa, start.Format(time.RFC3339Nano), b.band.Name, b.band.DutyCycle, b.band.DwellLimit, b.band.DwellWindow)
	}
	if err != nil {
		b.violated++
	}
	b.insert(span{start, start.Add(toa)})
	return err
}

// Violations returns how many committed transmissions broke a limit.
func (b *Budget) Violations() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.violated
}

// Used returns the airtime spent in the window that ends now. Airtime older
// than the retention period (the longest limit window, at least one hour) is
// forgotten, so larger windows report at most that much history.
func (b *Budget) Used(window time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.prune(now)
	return b.between(now.Add(-window), now)
}

// DutyLeft returns the share of the duty-cycle allowance not used in the
// window that ends now, in [0,1]; 1 for a band without a duty-cycle limit
// (a dwell limit alone never runs a transmitter dry for long).
func (b *Budget) DutyLeft() float64 {
	if b.duty.max == 0 {
		return 1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.prune(now)
	used := b.between(now.Add(-b.duty.window), now)
	return max(0, 1-float64(used)/float64(b.duty.max))
}

// Remaining returns the longest transmission the limits allow to start now,
// or at the end of a committed transmission that is still on the air. With no
// limit at all it returns the largest Duration.
func (b *Budget) Remaining() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.prune(now)
	s := now
	if b.lastEnd.After(s) {
		s = b.lastEnd
	}
	rem := time.Duration(1<<63 - 1)
	for _, l := range []limit{b.duty, b.dwell} {
		if l.max == 0 {
			continue
		}
		// fits(d): airtime after s+d-window, plus d, is at most max. It is
		// monotone in d, so bisect on whole nanoseconds.
		lo, hi := time.Duration(0), l.max
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			if b.after(s.Add(mid-l.window))+mid <= l.max {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		rem = min(rem, lo)
	}
	return rem
}

// earliest finds the first start >= from (and >= lastEnd) for toa.
//
// With every recorded transmission ending by the start s, the airtime in a
// window [t-W, t] that holds part of the new frame is largest for t = s+toa,
// so the only condition is: airtime after s+toa-W, plus toa, is at most the
// limit. That airtime only falls as s grows, so the earliest s is found by
// walking the history once.
func (b *Budget) earliest(from time.Time, toa time.Duration) (time.Time, bool) {
	if toa < 0 {
		toa = 0
	}
	s := from
	if b.lastEnd.After(s) {
		s = b.lastEnd
	}
	for _, l := range []limit{b.duty, b.dwell} {
		if l.max == 0 {
			continue
		}
		if toa > l.max {
			return time.Time{}, false
		}
		if t := b.earliestFor(l, toa); t.After(s) {
			s = t
		}
	}
	return s, true
}

// earliestFor returns the earliest start ignoring "now" for one limit.
func (b *Budget) earliestFor(l limit, toa time.Duration) time.Time {
	excess := b.total - (l.max - toa) // airtime that must lie before s+toa-W
	if excess <= 0 {
		return time.Time{}
	}
	var cum time.Duration
	for _, sp := range b.spans {
		d := sp.end.Sub(sp.start)
		if cum+d >= excess {
			x := sp.start.Add(excess - cum)
			return x.Add(l.window - toa)
		}
		cum += d
	}
	return b.lastEnd // unreachable: excess <= total
}

// after returns the recorded airtime after x.
func (b *Budget) after(x time.Time) time.Duration {
	var sum time.Duration
	for i := len(b.spans) - 1; i >= 0; i-- {
		sp := b.spans[i]
		if !sp.end.After(x) {
			break
		}
		if sp.start.After(x) {
			sum += sp.end.Sub(sp.start)
		} else {
			sum += sp.end.Sub(x)
		}
	}
	return sum
}

// between returns the recorded airtime inside [from, to].
func (b *Budget) between(from, to time.Time) time.Duration {
	var sum time.Duration
	for _, sp := range b.spans {
		lo, hi := sp.start, sp.end
		if lo.Before(from) {
			lo = from
		}
		if hi.After(to) {
			hi = to
		}
		if hi.After(lo) {
			sum += hi.Sub(lo)
		}
	}
	return sum
}

func (b *Budget) insert(n span) {
	b.total += n.end.Sub(n.start)
	if n.end.After(b.lastEnd) {
		b.lastEnd = n.end
	}
	k := len(b.spans)
	if k > 0 && b.spans[k-1].end.Equal(n.start) {
		b.spans[k-1].end = n.end // back-to-back: merge
		return
	}
	if k == 0 || !n.start.Before(b.spans[k-1].start) {
		b.spans = append(b.spans, n)
		return
	}
	i := sort.Search(k, func(i int) bool { return b.spans[i].start.After(n.start) })
	b.spans = append(b.spans, span{})
	copy(b.spans[i+1:], b.spans[i:])
	b.spans[i] = n
}

// prune drops transmissions that ended more than retain before now.
func (b *Budget) prune(now time.Time) {
	cut := now.Add(-b.retain)
	i := 0
	for i < len(b.spans) && !b.spans[i].end.After(cut) {
		b.total -= b.spans[i].end.Sub(b.spans[i].start)
		i++
	}
	if i == 0 {
		return
	}
	// Re-slicing drops the front in O(1); copy to a fresh array once the
	// dropped part dominates so the backing array cannot grow without bound.
	b.spans = b.spans[i:]
	if cap(b.spans) > 2*len(b.spans)+64 {
		b.spans = append([]span(nil), b.spans...)
	}
}

// Len returns how many (merged) transmissions the budget remembers.
func (b *Budget) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.spans)
}
