package policy

import (
	"time"

	"github.com/ternmesh/tern/bundle"
)

// ControlShare is the largest share of a radio channel's capacity that
// control traffic (announces, summaries, acks) may use (DESIGN.md: 3 %).
const ControlShare = 0.03

// Budget is a token bucket of airtime: it refills at Share seconds of air
// per second, up to Burst. Use one per radio link for control traffic.
type Budget struct {
	Share float64
	Burst time.Duration
	level time.Duration
	last  time.Time
}

// NewBudget returns a full bucket.
func NewBudget(share float64, burst time.Duration) *Budget {
	return &Budget{Share: share, Burst: burst, level: burst}
}

func (b *Budget) refill(now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		b.level += time.Duration(float64(now.Sub(b.last)) * b.Share)
		if b.level > b.Burst {
			b.level = b.Burst
		}
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
}

// Allow spends air if the bucket holds that much and reports whether it did.
func (b *Budget) Allow(now time.Time, air time.Duration) bool {
	b.refill(now)
	if air > b.level {
		return false
	}
	b.level -= air
	return true
}

// Left is the airtime available now.
func (b *Budget) Left(now time.Time) time.Duration {
	b.refill(now)
	return b.level
}

// Trickle paces periodic announces on one link (RFC 6206 style): the
// interval starts at Min, doubles after every announce whose content did
// not change, up to Max, and drops back to Min when the routes change.
// Redundant rebroadcasts are suppressed: when K or more announces heard
// on a shared medium during the interval already said the same thing,
// the node stays silent (K = 0 disables suppression).
type Trickle struct {
	Min, Max time.Duration
	K        int
	interval time.Duration
	next     time.Time
	last     time.Time
	digest   uint64
	heard    int
}

// Due reports whether an announce with the given content digest should
// go out now, and schedules the next one. Call it at least when NextAt
// says so and whenever the routes change.
func (t *Trickle) Due(now time.Time, digest uint64) bool {
	if t.interval == 0 || digest != t.digest {
		t.interval, t.digest, t.heard = t.Min, digest, 0
		if t.last.IsZero() || now.Sub(t.last) >= t.Min {
			t.next, t.last = now.Add(t.Min), now
			return true
		}
		// Changed again within Min of the last announce: wait until Min
		// has passed, so a flapping neighbourhood costs at most one
		// announce per Min.
		t.next = t.last.Add(t.Min)
		return false
	}
	if now.Before(t.next) {
		return false
	}
	suppressed := t.K > 0 && t.heard >= t.K
	t.interval = min(t.interval*2, t.Max)
	t.next, t.heard = now.Add(t.interval), 0
	if !suppressed {
		t.last = now
	}
	return !suppressed
}

// Heard counts an announce overheard with the same digest as ours.
func (t *Trickle) Heard(digest uint64) {
	if digest == t.digest {
		t.heard++
	}
}

// NextAt is when Due will next say yes without a change.
func (t *Trickle) NextAt() time.Time { return t.next }

// Digest hashes a route list (FNV-1a) for Trickle.
func Digest(routes []bundle.Route) uint64 {
	h := uint64(14695981039346656037)
	for _, r := range routes {
		for _, b := range r.Dest {
			h = (h ^ uint64(b)) * 1099511628211
		}
		h = (h ^ uint64(r.Hops)) * 1099511628211
	}
	return h
}

// Limiter rate-limits the bundles each neighbour hands over (a token
// bucket per neighbour). Relays cannot see who originated a bundle, so
// quotas key on the neighbour that handed it over: a node that floods
// is throttled at its first hop and cannot crowd out the others.
//
// A neighbour's bucket is forgotten once it has refilled (a full bucket
// and none behave alike), so a radio sender forging a new source address
// for every frame grows the map only by the frames it gets on air while
// a bucket refills (Burst/Rate), not for ever.
type Limiter struct {
	Rate  float64 // bundles per second
	Burst float64
	b     map[bundle.Addr]*bucket
	sweep sweeper
}

type bucket struct {
	level float64
	last  time.Time
}

// NewLimiter returns a limiter allowing rate bundles/s with a burst.
func NewLimiter(rate, burst float64) *Limiter {
	return &Limiter{Rate: rate, Burst: burst, b: make(map[bundle.Addr]*bucket)}
}

// Allow takes one token for neighbour n and reports whether one was there.
func (l *Limiter) Allow(n bundle.Addr, now time.Time) bool {
	k := l.b[n]
	if k == nil {
		sweep(&l.sweep, l.b, now, l.refill(), func(o *bucket) bool {
			return o.level+now.Sub(o.last).Seconds()*l.Rate >= l.Burst
		})
		k = &bucket{level: l.Burst, last: now}
		l.b[n] = k
	}
	if now.After(k.last) {
		k.level = min(l.Burst, k.level+now.Sub(k.last).Seconds()*l.Rate)
		k.last = now
	}
	if k.level < 1 {
		return false
	}
	k.level--
	return true
}

// sweeper spaces the sweeps of a per-neighbour map that forgets entries
// gone back to their initial state. A sweep runs, as an entry is added,
// when the map has doubled since the last sweep left it or a period has
// passed since then (and it holds at least sweepMin): each entry added
// pays for a constant share of the sweeps, and an entry back in its
// initial state is gone within two periods of the next addition.
type sweeper struct {
	at   int
	next time.Time
}

const sweepMin = 64

// sweep, called as an entry is about to be added to m, forgets the
// entries back in their initial state (initial reports it) when a sweep
// is due by s, and records the sweep in s.
func sweep[V any](s *sweeper, m map[bundle.Addr]V, now time.Time, period time.Duration, initial func(V) bool) {
	n := len(m)
	if n < sweepMin || (n < s.at && now.Before(s.next)) {
		return
	}
	for a, v := range m {
		if initial(v) {
			delete(m, a)
		}
	}
	s.at, s.next = 2*len(m), now.Add(period)
}

// refill is how long an empty bucket takes to fill (an hour at most).
func (l *Limiter) refill() time.Duration {
	if l.Rate <= 0 || l.Burst/l.Rate > 3600 {
		return time.Hour
	}
	return time.Duration(l.Burst / l.Rate * float64(time.Second))
}

// Reputation tracks, per neighbour, the bundles handed to it on a live
// route and the delivery receipts seen for them later. A neighbour that
// swallows bundles (a liar advertising routes it does not have) earns a
// metric penalty, so routing moves around it.
type Reputation struct {
	// MinSample is how many handed bundles are judged before a penalty.
	MinSample int
	// Ratio is the receipt ratio below which the penalty applies.
	Ratio float64
	// Penalty is added to every route through a bad neighbour.
	Penalty uint8
	per     map[bundle.Addr]*score
	// handed and receipted are the sums over per.
	handed, receipted int
}

type score struct{ handed, receipted int }

// NewReputation returns a tracker with the default judgement: at least 8
// bundles, under a quarter of the average receipt ratio, penalty
// MaxMetric (unusable).
func NewReputation() *Reputation {
	return &Reputation{MinSample: 8, Ratio: 0.25, Penalty: MaxMetric, per: make(map[bundle.Addr]*score)}
}

func (r *Reputation) of(n bundle.Addr) *score {
	s := r.per[n]
	if s == nil {
		s = &score{}
		r.per[n] = s
	}
	return s
}

// Handed records a bundle handed to n on a live route.
func (r *Reputation) Handed(n bundle.Addr) { r.of(n).handed++; r.handed++ }

// Receipted records a delivery receipt for a bundle handed to n.
func (r *Reputation) Receipted(n bundle.Addr) { r.of(n).receipted++; r.receipted++ }

// Penalty is the metric penalty for routes through n: n has been judged
// on at least MinSample bundles and its receipt ratio is under Ratio times
// this node's ratio over all neighbours (at least ratioFloor). Judging
// against the average, not an absolute bar, keeps honest neighbours usable
// where receipts are scarce for honest reasons (destinations that are
// often away, receipts that travel slowly over radio), while a neighbour
// that swallows everything still stands out.
func (r *Reputation) PenaltyOf(n bundle.Addr) uint8 {
	s := r.per[n]
	if s == nil || s.handed < r.MinSample {
		return 0
	}
	avg := max(float64(r.receipted)/float64(r.handed), ratioFloor)
	if float64(s.receipted) < r.Ratio*avg*float64(s.handed) {
		return r.Penalty
	}
	return 0
}

// ratioFloor is the least average receipt ratio a neighbour is judged
// against.
const ratioFloor = 0.2
