package router

import (
	"bytes"
	"sort"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
)

// RouteInfo is a route as shown to users.
type RouteInfo struct {
	Dest bundle.Addr `json:"dest"`
	Via  bundle.Addr `json:"via"`
	// Hops is the route metric in policy units (1 per wired hop, 2 per
	// fast radio hop, 4 per slow radio hop; see router/policy.Units), the
	// penalty (Penalty) not included.
	Hops uint8 `json:"hops"`
	Live bool  `json:"live"`
	// Feasible is false for a route that could lead round a loop (it
	// reported no better than this node's best); it is used only while no
	// feasible route exists and never announced.
	Feasible bool `json:"feasible"`
	// Penalty is added to the metric of routes through a neighbour whose
	// routes did not deliver (no delivery receipts came back), or that is
	// judged flooding: it kept sending past its ingress limit, and its
	// routes stay unusable (policy.MaxMetric) until it has been quiet for
	// 10 minutes (policy.FloodWatch).
	Penalty uint8     `json:"penalty,omitempty"`
	Seen    time.Time `json:"seen"`
}

// table is the route table: router/policy's distance vector (split
// horizon, route expiry, the feasibility condition for loop freedom) with
// a metric penalty per neighbour: its reputation, or the full penalty
// while it is judged flooding (penaltyOf). Safe for concurrent use.
type table struct {
	mu    sync.Mutex
	t     *policy.Table
	rep   *policy.Reputation
	flood *policy.FloodWatch // fed by refused
	now   func() time.Time   // the router's clock (Config.Now)
}

// newTable returns a table for node self whose penalties come from rep
// and from its own flood judgement, on the clock now.
func newTable(self bundle.Addr, cfg policy.TableConfig, rep *policy.Reputation, now func() time.Time) *table {
	t := &table{t: policy.NewTable(self, cfg), rep: rep, flood: policy.NewFloodWatch(), now: now}
	t.t.SetPenalty(t.penaltyOf) // called with t.mu held
	return t
}

// refused records a bundle from neighbour n refused at its ingress limit
// at now. It reports whether n has just been judged flooding (it was not
// before), so the caller logs it and reroutes once, not on every refusal.
func (t *table) refused(n bundle.Addr, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flood.Refused(n, now)
}

// penaltyOf is the metric penalty for routes through n: policy.MaxMetric
// while n is judged flooding, else its reputation penalty. It is
// read afresh at every routing decision, so routes through n are used
// again as soon as the flood judgement lapses (with time alone); the next
// round's Expire (policy.Table.notePenalties) then ends any hold-down the
// penalty started. Called with t.mu held.
func (t *table) penaltyOf(n bundle.Addr) uint8 {
	if t.flood.Flooding(n, t.now()) {
		return policy.MaxMetric
	}
	return t.rep.PenaltyOf(n)
}

// neighbourUp records a direct route to n over links worth units.
func (t *table) neighbourUp(n bundle.Addr, units uint8, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.t.NeighbourUp(n, units, now)
}

// neighbourDown marks every route through n stale; they stay usable as
// delay-tolerant custodians until they expire.
func (t *table) neighbourDown(n bundle.Addr, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.t.NeighbourDown(n, now)
}

// learn applies a neighbour's announce heard over links worth units.
func (t *table) learn(from bundle.Addr, units uint8, routes []bundle.Route, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.t.Learn(from, units, routes, now)
}

// expire turns routes not re-announced in time stale and drops old stale
// ones.
func (t *table) expire(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.t.Expire(now)
}

// restore adds a stale route remembered across a restart.
func (t *table) restore(dest, via bundle.Addr, metric uint8, seen time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.t.Restore(dest, via, metric, seen)
}

// nextHop picks the neighbour for dest, never exclude. usable says whether
// a neighbour is up with a link that may carry the bundle now; banned
// whether it never may (up only over clear-only links, for an encrypted
// bundle). In order of preference:
//
//  1. the live, feasible route with the lowest metric through a usable
//     neighbour (policy.Table.NextHop: the feasibility condition keeps
//     these loop-free);
//  2. while no feasible route exists (the hold-down after the best one was
//     lost), the live route with the lowest metric through a usable
//     neighbour: failover to a longer path at once, not after the
//     hold-down. Such a route is never announced, and a bundle that comes
//     back round a loop is taken again and routed elsewhere (cameBack);
//  3. otherwise (no live path now) the custodian: the route that was
//     closest to the destination when last seen, lowest metric then
//     freshest, whether or not that neighbour is up. The node that last
//     reached a destination (often its direct neighbour) is where a bundle
//     should wait; preferring any stale route through a neighbour that is
//     up would pass bundles round among nodes that all lost the
//     destination. A banned custodian gives no route.
//
// Routes through a neighbour with a penalty (reputation, flood) count it
// in every tier; at MaxMetric they are never live. live reports tier 1 or
// 2; ok is false when nothing usable is known.
func (t *table) nextHop(dest, exclude bundle.Addr, usable, banned func(bundle.Addr) bool) (via bundle.Addr, live, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if via, live, _ := t.t.NextHop(dest, exclude, usable); live {
		return via, true, true
	}
	if via, ok := t.t.LiveHop(dest, exclude, usable); ok {
		return via, true, true
	}
	// No live route through a usable neighbour: the custodian.
	var best *policy.Candidate
	cands := t.t.Candidates(dest)
	for i := range cands {
		c := &cands[i]
		if c.Via == exclude {
			continue
		}
		if best == nil || c.Effective < best.Effective || c.Effective == best.Effective && c.Seen.After(best.Seen) {
			best = c
		}
	}
	if best == nil || banned(best.Via) {
		return bundle.Addr{}, false, false
	}
	return best.Via, false, true
}

// liveRoutes lists the live routes to dest not through exclude whose
// neighbour passes usable, cheapest first (effective metric, then
// address).
func (t *table) liveRoutes(dest, exclude bundle.Addr) []policy.Candidate {
	t.mu.Lock()
	cands := t.t.Candidates(dest)
	t.mu.Unlock()
	out := cands[:0]
	for _, c := range cands {
		if c.Live && c.Via != exclude && c.Effective < policy.MaxMetric {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Effective != out[j].Effective {
			return out[i].Effective < out[j].Effective
		}
		return bytes.Compare(out[i].Via[:], out[j].Via[:]) < 0
	})
	return out
}

// advertise lists the routes to announce to neighbour to (split horizon),
// nearest first, at most limit (0: all).
func (t *table) advertise(to bundle.Addr, limit int) []bundle.Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.t.Advertise(to, limit)
}

// penalised reports whether routes through n carry a penalty now (a
// poor reputation or a flood).
func (t *table) penalised(n bundle.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.penaltyOf(n) > 0
}

// judge applies one verdict on a bundle handed to n on a live route:
// receipted or not. It reports whether n's reputation penalty changed.
func (t *table) judge(n bundle.Addr, receipted bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	before := t.rep.PenaltyOf(n)
	t.rep.Handed(n)
	if receipted {
		t.rep.Receipted(n)
	}
	return t.rep.PenaltyOf(n) != before
}

// credit adds a late receipt for a bundle already judged unreceipted. It
// reports whether n's reputation penalty changed.
func (t *table) credit(n bundle.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	before := t.rep.PenaltyOf(n)
	t.rep.Receipted(n)
	return t.rep.PenaltyOf(n) != before
}

func (t *table) list() []RouteInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	routes := t.t.Routes()
	out := make([]RouteInfo, 0, len(routes))
	for _, r := range routes {
		out = append(out, RouteInfo{Dest: r.Dest, Via: r.Via, Hops: r.Metric, Live: r.Live, Feasible: r.Feasible,
			Penalty: t.t.Penalty(r.Via), Seen: r.Seen})
	}
	return out
}
