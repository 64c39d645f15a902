package policy

import (
	"bytes"
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
	// last is the neighbour's previous announce as Learn applied it (see
	// learn.go); lastOK says it may be used, lastUnits is the link's
	// worth it was learned over.
	last      []learned
	lastUnits uint8
	lastOK    bool
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
	// routes are the routes to dest, one per neighbour, and vias their
	// neighbours in the same order. Few neighbours know any one
	// destination, so a short list searched in order beats a map, and it
	// is much faster to walk.
	routes []*Route
	vias   []bundle.Addr
	// dirty is true while the entry waits in advCache.dirty.
	dirty bool
	// feasible counts the routes that are live and feasible, so that
	// hold-down need not scan the routes to know whether any is left.
	feasible int
}

// route is the route through via, or nil.
func (e *destEntry) route(via bundle.Addr) *Route {
	for i := range e.vias {
		if e.vias[i] == via {
			return e.routes[i]
		}
	}
	return nil
}

// add adds r, a route through a neighbour e has none through.
func (e *destEntry) add(r *Route) {
	e.routes, e.vias = append(e.routes, r), append(e.vias, r.Via)
}

// setFlags sets r's Live and Feasible, keeping e.feasible counted.
func (e *destEntry) setFlags(r *Route, live, feasible bool) {
	if r.Live && r.Feasible {
		e.feasible--
	}
	r.Live, r.Feasible = live, feasible
	if live && feasible {
		e.feasible++
	}
}

// withdraw turns r, a live route of e, stale: routing changes, and e
// may have lost its last live feasible route.
func (t *Table) withdraw(e *destEntry, r *Route, now time.Time) {
	e.setFlags(r, false, r.Feasible)
	t.touch(e)
	t.noteLoss(e, now)
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
	// next and unmatched are Learn's scratch space (learn.go).
	next      []learned
	unmatched []learned
	adv       advCache
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
		e = &destEntry{dest: dest, fd: MaxMetric}
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
			r.Seen, changed = now, true
			t.withdraw(t.dests[dest], r, now)
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
	_, _, changed := t.apply(dest, via, reported, units, now)
	return changed
}

// apply is update that also returns the route through via to dest and
// its destination's entry (nil when there is none), so that Learn can
// remember them.
func (t *Table) apply(dest, via bundle.Addr, reported, units uint8, now time.Time) (*Route, *destEntry, bool) {
	if dest == t.self {
		return nil, nil, false
	}
	metric := int(reported) + int(units)
	if metric >= MaxMetric && t.dests[dest] == nil {
		return nil, nil, false
	}
	e := t.entry(dest)
	t.maybeReset(e, now)
	r := e.route(via)
	if metric >= MaxMetric {
		if r != nil && r.Live {
			r.Seen = now
			t.withdraw(e, r, now)
			return r, e, true
		}
		return r, e, false
	}
	if r == nil {
		r = &Route{Dest: dest, Via: via}
		e.add(r)
		t.via(via).routes[dest] = r
	}
	return r, e, t.refresh(e, r, reported, uint8(metric), now)
}

// refresh makes r, a route of entry e, live at metric (below MaxMetric),
// as its neighbour reported it now. It reports whether routing may have
// changed. The caller has already run maybeReset on e.
func (t *Table) refresh(e *destEntry, r *Route, reported, metric uint8, now time.Time) bool {
	feasible := r.Dest == r.Via || reported < e.fd
	changed := !r.Live || r.Metric != metric || r.Feasible != feasible
	if changed {
		t.touch(e)
	}
	r.Metric, r.Reported, r.Seen = metric, reported, now
	e.setFlags(r, true, feasible)
	if t.usable(r) && metric < e.fd {
		e.fd = metric
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

// hasUsable reports whether e has a usable route. The count of live
// feasible routes answers it unless penalties are in play.
func (t *Table) hasUsable(e *destEntry) bool {
	if e.feasible == 0 {
		return false
	}
	if t.penalty == nil {
		return true
	}
	for _, r := range e.routes {
		if t.usable(r) {
			return true
		}
	}
	return false
}

// noteLoss remembers when a destination lost its last usable route.
func (t *Table) noteLoss(e *destEntry, now time.Time) {
	if t.hasUsable(e) {
		return
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
		t.touch(e)
		delete(t.lost, e.dest)
		for _, r := range e.routes {
			if r.Live {
				e.setFlags(r, true, r.Dest == r.Via || r.Reported < MaxMetric)
				if t.usable(r) && r.Metric < e.fd {
					e.fd = r.Metric
				}
			}
		}
	}
	if t.hasUsable(e) {
		e.lostAt = time.Time{}
		delete(t.lost, e.dest)
	}
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
				changed = true
				t.withdraw(t.dests[dest], r, now)
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
		k := 0
		for i, r := range e.routes {
			if !r.Live && now.Sub(r.Seen) > t.cfg.StaleFor {
				t.dropRoute(dest, r.Via)
				continue
			}
			if at := r.Seen.Add(t.cfg.StaleFor + 1); !r.Live && at.Before(next) {
				next = at
			}
			e.routes[k], e.vias[k] = r, e.vias[i]
			k++
		}
		clear(e.routes[k:])
		e.routes, e.vias = e.routes[:k], e.vias[:k]
		if len(e.routes) == 0 {
			delete(t.dests, dest)
			delete(t.lost, dest)
		}
	}
	t.sweepAt = next
}

// dropRoute removes the route to dest from via's index (sweep removes
// it from the destination's list), and via's remembered announce, which
// may point to it.
func (t *Table) dropRoute(dest, via bundle.Addr) {
	v := t.vias[via]
	if v == nil {
		return
	}
	delete(v.routes, dest)
	v.forget()
	if len(v.routes) == 0 {
		delete(t.vias, via)
	}
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
		m := t.metric(r)
		rank := 2
		switch {
		case r.Live && r.Feasible && u && m < MaxMetric:
			rank = 0
		case u:
			rank = 1
		}
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

// LiveHop picks the cheapest live route to dest through a neighbour that
// is up, never exclude, feasible or not (ties by address; penalties count,
// and a route at MaxMetric is never taken). It is for when NextHop finds
// no live feasible route: a hold-down after the best route was lost, or a
// liar's claims pinning the feasible distance below every honest route.
// Such a route may loop; callers take a bundle that comes back round it
// again and route it elsewhere.
func (t *Table) LiveHop(dest, exclude bundle.Addr, up func(bundle.Addr) bool) (bundle.Addr, bool) {
	e := t.dests[dest]
	if e == nil {
		return bundle.Addr{}, false
	}
	var best *Route
	bestMetric := 0
	for _, r := range e.routes {
		if r.Via == exclude || !r.Live {
			continue
		}
		m := t.metric(r)
		if m >= MaxMetric || !up(r.Via) {
			continue
		}
		if best == nil || m < bestMetric || (m == bestMetric && bytes.Compare(r.Via[:], best.Via[:]) < 0) {
			best, bestMetric = r, m
		}
	}
	if best == nil {
		return bundle.Addr{}, false
	}
	return best.Via, true
}

// HasLive reports whether dest has a live feasible route through a
// neighbour that is up.
func (t *Table) HasLive(dest bundle.Addr, up func(bundle.Addr) bool) bool {
	_, live, _ := t.NextHop(dest, bundle.Addr{}, up)
	return live
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
