package policy

import (
	"bytes"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// MaxMetric bounds route metrics: a route at or beyond it is unreachable
// and never advertised (it is also below bundle.MaxHopLimit, the largest
// value an announce may carry).
const MaxMetric = 60

// Route is one way to reach a destination: through neighbour Via at
// Metric units (see Units). Reported is what Via announced.
type Route struct {
	Dest, Via bundle.Addr
	Metric    uint8
	Reported  uint8
	// Live is true while Via keeps advertising the route (or, for a direct
	// route, while a link to Via is up).
	Live bool
	// Feasible is false for a route that failed the feasibility condition
	// when it was learned: it may still hold bundles as a custodian but
	// is never the live choice, so it cannot close a loop.
	Feasible bool
	// Seen is when the route was last advertised or the link last up.
	Seen time.Time
	// stamp is the Learn call that last listed the route.
	stamp uint64
}

// viaEntry is the routes through one neighbour.
type viaEntry struct {
	routes map[bundle.Addr]*Route // by destination
	// learned is when the neighbour's last announce was applied: every
	// live learned route through it was refreshed (or withdrawn) then,
	// so they all expire together.
	learned time.Time
	// expiring is true while live learned routes through it may expire.
	expiring bool
	// penalty is the neighbour's penalty when Expire last looked.
	penalty uint8
}

type destEntry struct {
	dest bundle.Addr
	// fd is the feasible distance: the smallest metric this node has had
	// for the destination since the entry was last reset. A neighbour's
	// route is feasible only if it reports a metric strictly below fd, so
	// no neighbour that routes through us can be chosen (loop freedom by
	// the feasibility condition of DUAL and Babel, without sequence
	// numbers).
	fd     uint8
	lostAt time.Time // when the last live feasible route went away
	routes map[bundle.Addr]*Route
}

// TableConfig tunes a Table.
type TableConfig struct {
	// LiveFor is how long a learned route stays live without being
	// advertised again (route expiry). Default 3 announce intervals, 90 s.
	LiveFor time.Duration
	// StaleFor is how long a stale route is kept as a custodian. Default 24 h.
	StaleFor time.Duration
	// HoldDown is how long a destination must be without any live route
	// before its feasible distance resets, letting longer routes in.
	// Default 2 × LiveFor.
	HoldDown time.Duration
}

// Table is a distance-vector route table with split horizon, route expiry
// and the feasibility condition.
type Table struct {
	self  bundle.Addr
	cfg   TableConfig
	dests map[bundle.Addr]*destEntry
	// vias indexes the same routes by neighbour, so an announce or a
	// neighbour going down touches only the routes through it.
	vias map[bundle.Addr]*viaEntry
	// lost holds the entries whose lostAt is set (hold-down running).
	lost map[bundle.Addr]*destEntry
	// sweepAt is the earliest time a stale route may be old enough to
	// drop; Expire scans the whole table only then.
	sweepAt time.Time
	// ver counts changes that may alter what Advertise says; adv caches
	// the per-destination best routes for one ver and penalty snapshot.
	ver uint64
	// learns numbers Learn calls (Route.stamp).
	learns uint64
	adv    advCache
	// penalty, when set, adds units to routes through a neighbour
	// (reputation).
	penalty func(via bundle.Addr) uint8
}

// NewTable returns an empty table for node self.
func NewTable(self bundle.Addr, cfg TableConfig) *Table {
	if cfg.LiveFor <= 0 {
		cfg.LiveFor = 90 * time.Second
	}
	if cfg.StaleFor <= 0 {
		cfg.StaleFor = 24 * time.Hour
	}
	if cfg.HoldDown <= 0 {
		cfg.HoldDown = 2 * cfg.LiveFor
	}
	return &Table{self: self, cfg: cfg, dests: make(map[bundle.Addr]*destEntry),
		vias: make(map[bundle.Addr]*viaEntry), lost: make(map[bundle.Addr]*destEntry)}
}

// SetPenalty installs a per-neighbour metric penalty (nil: none).
func (t *Table) SetPenalty(p func(via bundle.Addr) uint8) { t.penalty = p }

func (t *Table) entry(dest bundle.Addr) *destEntry {
	e := t.dests[dest]
	if e == nil {
		e = &destEntry{dest: dest, fd: MaxMetric, routes: make(map[bundle.Addr]*Route)}
		t.dests[dest] = e
	}
	return e
}

// NeighbourUp records a direct route to n over a link worth units.
func (t *Table) NeighbourUp(n bundle.Addr, units uint8, now time.Time) bool {
	return t.update(n, n, 0, units, now)
}

// NeighbourDown marks every route through n stale.
func (t *Table) NeighbourDown(n bundle.Addr, now time.Time) bool {
	changed := false
	v := t.vias[n]
	if v == nil {
		return false
	}
	for dest, r := range v.routes {
		if r.Live {
			r.Live, r.Seen, changed = false, now, true
			t.ver++
			t.noteLoss(t.dests[dest], now)
		}
	}
	v.expiring = false
	return changed
}

func (t *Table) via(n bundle.Addr) *viaEntry {
	v := t.vias[n]
	if v == nil {
		v = &viaEntry{routes: make(map[bundle.Addr]*Route)}
		t.vias[n] = v
	}
	return v
}

// update applies one advertised route: via reports reported units to dest,
// over a link worth units.
func (t *Table) update(dest, via bundle.Addr, reported, units uint8, now time.Time) bool {
	if dest == t.self {
		return false
	}
	metric := int(reported) + int(units)
	if metric >= MaxMetric && t.dests[dest] == nil {
		return false
	}
	e := t.entry(dest)
	t.maybeReset(e, now)
	r := e.routes[via]
	if metric >= MaxMetric {
		if r != nil && r.Live {
			r.Live, r.Seen = false, now
			t.ver++
			t.noteLoss(e, now)
			return true
		}
		return false
	}
	feasible := dest == via || reported < e.fd
	changed := r == nil || !r.Live || r.Metric != uint8(metric) || r.Feasible != feasible
	if changed {
		t.ver++
	}
	if r == nil {
		r = &Route{Dest: dest, Via: via}
		e.routes[via] = r
		t.via(via).routes[dest] = r
	}
	r.Metric, r.Reported, r.Live, r.Feasible, r.Seen = uint8(metric), reported, true, feasible, now
	if t.usable(r) && uint8(metric) < e.fd {
		e.fd = uint8(metric)
	}
	return changed
}

// usable reports whether r may carry bundles now: live, feasible, and
// through a neighbour whose penalty leaves it under MaxMetric. Only
// usable routes set the feasible distance or keep a destination out of
// hold-down: a neighbour judged to swallow bundles (reputation) cannot
// pin the feasible distance with its claims and keep every honest,
// longer route infeasible.
func (t *Table) usable(r *Route) bool {
	return r.Live && r.Feasible && t.metric(r) < MaxMetric
}

// noteLoss remembers when a destination lost its last usable route.
func (t *Table) noteLoss(e *destEntry, now time.Time) {
	for _, r := range e.routes {
		if t.usable(r) {
			return
		}
	}
	if e.lostAt.IsZero() {
		e.lostAt = now
		t.lost[e.dest] = e
	}
}

func (t *Table) maybeReset(e *destEntry, now time.Time) {
	if e.lostAt.IsZero() {
		return // nothing lost, nothing to reset or clear
	}
	if now.Sub(e.lostAt) >= t.cfg.HoldDown {
		e.fd, e.lostAt = MaxMetric, time.Time{}
		t.ver++
		delete(t.lost, e.dest)
		for _, r := range e.routes {
			if r.Live {
				r.Feasible = r.Dest == r.Via || r.Reported < MaxMetric
				if t.usable(r) && r.Metric < e.fd {
					e.fd = r.Metric
				}
			}
		}
	}
	for _, r := range e.routes {
		if t.usable(r) {
			e.lostAt = time.Time{}
			delete(t.lost, e.dest)
			return
		}
	}
}

// Learn applies a whole announce from neighbour from, reached over a link
// worth units: listed routes become live, routes through from that it no
// longer lists turn stale. It reports whether routing may have changed.
func (t *Table) Learn(from bundle.Addr, units uint8, routes []bundle.Route, now time.Time) bool {
	changed := t.update(from, from, 0, units, now)
	t.learns++
	v := t.via(from)
	for _, r := range routes {
		if r.Dest == t.self || r.Dest == from {
			continue
		}
		if t.update(r.Dest, from, r.Hops, units, now) {
			changed = true
		}
		if rt := v.routes[r.Dest]; rt != nil {
			rt.stamp = t.learns
		}
	}
	for dest, r := range v.routes {
		if dest != from && r.Live && r.stamp != t.learns {
			r.Live, r.Seen, changed = false, now, true
			t.ver++
			t.noteLoss(t.dests[dest], now)
		}
	}
	v.learned, v.expiring = now, true
	return changed
}

// Expire turns learned routes not refreshed within LiveFor stale (direct
// routes stay live while their link is up: the caller refreshes them with
// NeighbourUp), and drops stale routes older than StaleFor.
//
// It costs one step per neighbour plus one per destination in hold-down;
// the whole table is scanned only when a stale route may be old enough
// to drop.
func (t *Table) Expire(now time.Time) bool {
	changed := false
	for via, v := range t.vias {
		if !v.expiring || now.Sub(v.learned) <= t.cfg.LiveFor {
			continue
		}
		// Every live learned route through via was refreshed at
		// v.learned (Learn withdraws the others), so all are due now.
		for dest, r := range v.routes {
			if r.Live && dest != via && now.Sub(r.Seen) > t.cfg.LiveFor {
				r.Live, changed = false, true
				t.ver++
				t.noteLoss(t.dests[dest], now)
			}
		}
		v.expiring = false
	}
	t.notePenalties(now)
	if !now.Before(t.sweepAt) {
		t.sweep(now)
	}
	for _, e := range t.lost {
		t.maybeReset(e, now)
	}
	return changed
}

// notePenalties starts the hold-down of destinations whose routes a new
// penalty made unusable (the feasible distance resets after it, so honest
// routes longer than a liar's claims become feasible), and ends it where a
// lifted penalty made a route usable again.
func (t *Table) notePenalties(now time.Time) {
	if t.penalty == nil {
		return
	}
	for via, v := range t.vias {
		p := t.penalty(via)
		if p == v.penalty {
			continue
		}
		v.penalty = p
		for dest, r := range v.routes {
			if r.Live {
				e := t.dests[dest]
				t.noteLoss(e, now)
				t.maybeReset(e, now)
			}
		}
	}
}

// sweep drops stale routes older than StaleFor and empty entries, and
// sets when the next sweep is due.
func (t *Table) sweep(now time.Time) {
	next := now.Add(t.cfg.StaleFor - t.cfg.LiveFor)
	for dest, e := range t.dests {
		for via, r := range e.routes {
			if r.Live {
				continue
			}
			if now.Sub(r.Seen) > t.cfg.StaleFor {
				delete(e.routes, via)
				if v := t.vias[via]; v != nil {
					delete(v.routes, dest)
					if len(v.routes) == 0 {
						delete(t.vias, via)
					}
				}
				continue
			}
			if at := r.Seen.Add(t.cfg.StaleFor + 1); at.Before(next) {
				next = at
			}
		}
		if len(e.routes) == 0 {
			delete(t.dests, dest)
			delete(t.lost, dest)
		}
	}
	t.sweepAt = next
}

func (t *Table) metric(r *Route) int {
	m := int(r.Metric)
	if t.penalty != nil {
		m += int(t.penalty(r.Via))
	}
	return m
}

// NextHop picks the neighbour for dest, never exclude. Preference: a live,
// feasible route through a neighbour that is up, lowest metric (ties by
// address); then the freshest stale route through a neighbour that is up
// (a custodian that may meet the destination again); then the freshest
// stale route at all (wait for that neighbour). live reports whether the
// choice is a live route.
func (t *Table) NextHop(dest, exclude bundle.Addr, up func(bundle.Addr) bool) (via bundle.Addr, live, ok bool) {
	e := t.dests[dest]
	if e == nil {
		return bundle.Addr{}, false, false
	}
	var best *Route
	bestRank, bestMetric := 3, 0
	for _, r := range e.routes {
		if r.Via == exclude {
			continue
		}
		u := up(r.Via)
		rank := 2
		switch {
		case r.Live && r.Feasible && u && t.metric(r) < MaxMetric:
			rank = 0
		case u:
			rank = 1
		}
		m := t.metric(r)
		better := best == nil || rank < bestRank
		if !better && rank == bestRank {
			if rank == 0 {
				better = m < bestMetric || (m == bestMetric && bytes.Compare(r.Via[:], best.Via[:]) < 0)
			} else {
				better = r.Seen.After(best.Seen) || (r.Seen.Equal(best.Seen) && bytes.Compare(r.Via[:], best.Via[:]) < 0)
			}
		}
		if better {
			best, bestRank, bestMetric = r, rank, m
		}
	}
	if best == nil {
		return bundle.Addr{}, false, false
	}
	return best.Via, bestRank == 0, true
}

// HasLive reports whether dest has a live feasible route through a
// neighbour that is up.
func (t *Table) HasLive(dest bundle.Addr, up func(bundle.Addr) bool) bool {
	_, live, _ := t.NextHop(dest, bundle.Addr{}, up)
	return live
}

// Advertise lists the routes to announce to neighbour to, best first: this
// node itself (metric 0) and the best live feasible route to every other
// destination that does not go through to (split horizon). At most limit
// routes (limit <= 0: all); the nearest destinations are kept, so a
// budget-limited radio announce still serves its neighbourhood.
func (t *Table) Advertise(to bundle.Addr, limit int) []bundle.Route {
	base := t.advertBase()
	out := make([]bundle.Route, 0, len(base)+1)
	var moved []bundle.Route // destinations whose best route goes through to
	for _, b := range base {
		switch {
		case b.dest == to:
		case b.via != to:
			out = append(out, bundle.Route{Dest: b.dest, Hops: b.best})
		case b.second < MaxMetric:
			moved = append(moved, bundle.Route{Dest: b.dest, Hops: b.second})
		}
	}
	if len(moved) > 0 {
		out = append(out, moved...)
		slices.SortFunc(out, cmpRoute)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func cmpRoute(a, b bundle.Route) int {
	if a.Hops != b.Hops {
		return int(a.Hops) - int(b.Hops)
	}
	return bytes.Compare(a.Dest[:], b.Dest[:])
}

// advBest is one destination's best advertised metric, the neighbour it
// goes through, and the best metric through any other neighbour (for
// split horizon).
type advBest struct {
	dest   bundle.Addr
	via    bundle.Addr
	best   uint8
	second uint8
}

type advCache struct {
	ok   bool
	ver  uint64
	pen  map[bundle.Addr]int
	base []advBest // sorted by best metric, then address; self first
	gen  uint64    // counts rebuilds of base
}

// AdvertGen changes whenever what Advertise would return may have changed
// (routes or penalties); equal values mean equal announces. A caller that
// only needs to know whether its last announce still holds compares it
// instead of building the announce again.
func (t *Table) AdvertGen() uint64 {
	t.advertBase()
	return t.adv.gen
}

// advertBase returns the cached per-destination bests, recomputing them
// only when the table or a neighbour's penalty changed.
func (t *Table) advertBase() []advBest {
	pen := make(map[bundle.Addr]int, len(t.vias))
	if t.penalty != nil {
		for via := range t.vias {
			if p := int(t.penalty(via)); p != 0 {
				pen[via] = p
			}
		}
	}
	c := &t.adv
	if c.ok && c.ver == t.ver && maps.Equal(c.pen, pen) {
		return c.base
	}
	base := make([]advBest, 1, len(t.dests)+1)
	base[0] = advBest{dest: t.self, via: t.self, best: 0, second: MaxMetric}
	for dest, e := range t.dests {
		b := advBest{dest: dest, best: MaxMetric, second: MaxMetric}
		for via, r := range e.routes {
			if !r.Live || !r.Feasible {
				continue
			}
			m := int(r.Metric) + pen[via]
			if m >= MaxMetric {
				continue
			}
			switch {
			case m < int(b.best) || (m == int(b.best) && bytes.Compare(via[:], b.via[:]) < 0):
				b.second = b.best
				b.best, b.via = uint8(m), via
			case m < int(b.second):
				b.second = uint8(m)
			}
		}
		if b.best < MaxMetric {
			base = append(base, b)
		}
	}
	slices.SortFunc(base, func(a, b advBest) int {
		return cmpRoute(bundle.Route{Dest: a.dest, Hops: a.best}, bundle.Route{Dest: b.dest, Hops: b.best})
	})
	*c = advCache{ok: true, ver: t.ver, pen: pen, base: base, gen: c.gen + 1}
	return base
}

// Routes lists every route, by destination then metric.
func (t *Table) Routes() []Route {
	var out []Route
	for _, e := range t.dests {
		for _, r := range e.routes {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := bytes.Compare(out[i].Dest[:], out[j].Dest[:]); c != 0 {
			return c < 0
		}
		if out[i].Metric != out[j].Metric {
			return out[i].Metric < out[j].Metric
		}
		return bytes.Compare(out[i].Via[:], out[j].Via[:]) < 0
	})
	return out
}

// Len is the number of destinations known.
func (t *Table) Len() int { return len(t.dests) }
