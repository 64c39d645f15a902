package policy

import (
	"time"

	"github.com/ternmesh/tern/bundle"
)

// What the daemon's router needs of a Table beyond what the simulator
// uses: its own choice of custodian among stale routes, and routes that
// survive a restart.

// Candidate is one route to a destination with its effective metric: the
// route's metric plus the reputation penalty of its neighbour.
type Candidate struct {
	Route
	Effective int
}

// Candidates lists every route to dest, live or stale, feasible or not, in
// no particular order. The router picks a custodian from them when no live
// route exists (NextHop's stale preference suits the simulator's
// spray-only custody, not a daemon that hands a bundle to one custodian).
func (t *Table) Candidates(dest bundle.Addr) []Candidate {
	e := t.dests[dest]
	if e == nil {
		return nil
	}
	out := make([]Candidate, 0, len(e.routes))
	for _, r := range e.routes {
		out = append(out, Candidate{Route: *r, Effective: t.metric(r)})
	}
	return out
}

// Penalty is the reputation penalty now applied to routes through via.
func (t *Table) Penalty(via bundle.Addr) uint8 {
	if t.penalty == nil {
		return 0
	}
	return t.penalty(via)
}

// Restore re-creates a stale route remembered across a restart: dest was
// reached through via at metric, last seen at seen. It is stale (and not
// feasible) until via announces it again, and it expires like any stale
// route, StaleFor after seen. A route already known is left as it is.
// It reports whether the route was added.
func (t *Table) Restore(dest, via bundle.Addr, metric uint8, seen time.Time) bool {
	if dest == t.self || via == t.self || metric >= MaxMetric || metric == 0 {
		return false
	}
	e := t.entry(dest)
	if e.route(via) != nil {
		return false
	}
	reported := metric - 1
	if dest == via {
		reported = 0
	}
	r := &Route{Dest: dest, Via: via, Metric: metric, Reported: reported, Seen: seen}
	e.add(r)
	t.via(via).routes[dest] = r
	t.touch(e)
	if at := seen.Add(t.cfg.StaleFor + 1); !t.sweepAt.IsZero() && at.Before(t.sweepAt) {
		t.sweepAt = at
	}
	return true
}
