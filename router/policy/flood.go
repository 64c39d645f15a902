package policy

import (
	"time"

	"github.com/ternmesh/tern/bundle"
)

// FloodWatch judges neighbours that keep sending past their ingress limit
// (Limiter): a broken node, or a liar pushing junk. Routes through a
// flooding neighbour should carry the full penalty (MaxMetric): a node
// that floods is not trusted to carry anyone else's bundles, so routing
// goes round it until it has been quiet for a while.
//
// Receipts alone (Reputation) cannot tell such a liar: on a LAN where it
// claims the best route to everyone, its neighbours hand it nearly all
// they route, so it sets their average receipt ratio itself, and the
// honest neighbours it draws traffic through look as bad as it does. In
// the simulator's city with a flooding liar on a LAN, the liar's LAN
// neighbours got about half of their messages through with receipts
// alone and over nine in ten with this judgement (seeds 1-8, README).
//
// An honest neighbour is refused now and then (a hub handing over all it
// holds after an outage): only Refusals refusals within one Window make
// a flood. Not safe for concurrent use.
type FloodWatch struct {
	// Refusals is how many refusals within Window make a flood.
	Refusals int
	// Window is the span refusals are counted over, and how long a
	// neighbour stays judged flooding after its last refusal that kept
	// the count at Refusals or more.
	Window time.Duration
	per    map[bundle.Addr]*floodScore
	// sweep forgets neighbours whose window has passed and who are not
	// judged (as Limiter forgets full buckets): they behave as if never
	// refused.
	sweep sweeper
}

type floodScore struct {
	start time.Time // the current window began
	n     int       // refusals in the current window
	until time.Time // judged flooding before this
}

// NewFloodWatch returns a watch with the default judgement: 20 refusals
// within 10 minutes.
func NewFloodWatch() *FloodWatch {
	return &FloodWatch{Refusals: 20, Window: 10 * time.Minute, per: make(map[bundle.Addr]*floodScore)}
}

// Refused records a bundle from neighbour n refused at its ingress limit
// at now. It reports whether n has just been judged flooding (it was not
// before this refusal), so the caller can reroute at once.
func (w *FloodWatch) Refused(n bundle.Addr, now time.Time) bool {
	f := w.per[n]
	if f == nil {
		sweep(&w.sweep, w.per, now, w.Window, func(o *floodScore) bool {
			return now.Sub(o.start) >= w.Window && !now.Before(o.until)
		})
		f = &floodScore{start: now}
		w.per[n] = f
	}
	was := now.Before(f.until)
	if now.Sub(f.start) >= w.Window {
		f.start, f.n = now, 0
	}
	f.n++
	if f.n >= w.Refusals {
		f.until = now.Add(w.Window)
	}
	return !was && now.Before(f.until)
}

// Flooding reports whether neighbour n is judged flooding at now.
func (w *FloodWatch) Flooding(n bundle.Addr, now time.Time) bool {
	f := w.per[n]
	return f != nil && now.Before(f.until)
}
