package router

import (
	"sort"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// maxHops bounds advertised routes: a route longer than this is not
// re-advertised (distance-vector count-to-infinity guard).
const maxHops = 16

// route is one way to reach a destination: through neighbour via, hops away.
type route struct {
	via  bundle.Addr
	hops uint8
	// live is true while the neighbour still advertises it (or, for a
	// direct route, while a link to the neighbour is up).
	live bool
	// seen is when the route was last advertised or the link last up. A
	// stale route is kept until seen+ttl: in a delay-tolerant network the
	// neighbour that last reached a destination is the best place to wait.
	seen time.Time
}

// RouteInfo is a route as shown to users.
type RouteInfo struct {
	Dest bundle.Addr `json:"dest"`
	Via  bundle.Addr `json:"via"`
	Hops uint8       `json:"hops"`
	Live bool        `json:"live"`
	Seen time.Time   `json:"seen"`
}

// table is the route table: for each destination, the neighbours that lead
// to it. Safe for concurrent use.
type table struct {
	mu     sync.Mutex
	ttl    time.Duration
	routes map[bundle.Addr]map[bundle.Addr]*route
}

func newTable(ttl time.Duration) *table {
	return &table{ttl: ttl, routes: make(map[bundle.Addr]map[bundle.Addr]*route)}
}

func (t *table) set(dest, via bundle.Addr, hops uint8, live bool, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.routes[dest]
	if m == nil {
		m = make(map[bundle.Addr]*route)
		t.routes[dest] = m
	}
	r := m[via]
	changed := r == nil || r.hops != hops || r.live != live
	if r == nil {
		r = &route{via: via}
		m[via] = r
	}
	r.hops, r.live, r.seen = hops, live, now
	return changed
}

// neighbourUp records a direct route to a neighbour whose link came up.
func (t *table) neighbourUp(n bundle.Addr, now time.Time) bool {
	return t.set(n, n, 1, true, now)
}

// neighbourDown marks every route through n stale; they stay usable as
// delay-tolerant custodians until they expire.
func (t *table) neighbourDown(n bundle.Addr, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.routes {
		if r := m[n]; r != nil && r.live {
			r.live = false
			r.seen = now
		}
	}
}

// learn applies a neighbour's announce: routes it lists become live, routes
// through it that it no longer lists become stale. It reports whether the
// table changed in a way that may change routing decisions.
func (t *table) learn(self, from bundle.Addr, a *bundle.Announce, now time.Time) bool {
	listed := make(map[bundle.Addr]bool, len(a.Routes))
	changed := false
	for _, r := range a.Routes {
		if r.Dest == self || r.Dest == from || r.Hops >= maxHops {
			continue
		}
		listed[r.Dest] = true
		if t.set(r.Dest, from, r.Hops+1, true, now) {
			changed = true
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for dest, m := range t.routes {
		if r := m[from]; r != nil && dest != from && r.live && !listed[dest] {
			r.live = false
			r.seen = now
			changed = true
		}
	}
	return changed
}

// expire drops stale routes older than the ttl.
func (t *table) expire(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for dest, m := range t.routes {
		for via, r := range m {
			if !r.live && now.Sub(r.seen) > t.ttl {
				delete(m, via)
			}
		}
		if len(m) == 0 {
			delete(t.routes, dest)
		}
	}
}

// nextHop picks the neighbour for dest. Preference: a live route through a
// neighbour that is up, fewest hops; otherwise (no live path now) the stale
// route that was closest to the destination when last seen — fewest hops,
// then freshest — whether or not that neighbour is up: the node that last
// reached a destination (often its direct neighbour) is where a bundle
// should wait. Preferring any stale route through a neighbour that is up
// would send bundles round in circles among nodes that all lost the
// destination. exclude is never chosen (the neighbour a bundle came from).
// ok is false when nothing is known.
func (t *table) nextHop(dest, exclude bundle.Addr, up func(bundle.Addr) bool) (bundle.Addr, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var best *route
	bestLive := false
	for via, r := range t.routes[dest] {
		if via == exclude {
			continue
		}
		live := r.live && up(via)
		switch {
		case best == nil, live && !bestLive:
		case bestLive != live:
			continue
		case r.hops < best.hops:
		case r.hops > best.hops:
			continue
		case live && string(r.via[:]) < string(best.via[:]):
		case !live && r.seen.After(best.seen):
		default:
			continue
		}
		best, bestLive = r, live
	}
	if best == nil {
		return bundle.Addr{}, false
	}
	return best.via, true
}

// advertise lists the routes to announce to neighbour to: this node itself
// and every live route not learned through to (split horizon).
func (t *table) advertise(self, to bundle.Addr) []bundle.Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []bundle.Route{{Dest: self, Hops: 0}}
	for dest, m := range t.routes {
		if dest == to {
			continue
		}
		var best uint8 = maxHops
		for via, r := range m {
			if r.live && via != to && r.hops < best {
				best = r.hops
			}
		}
		if best < maxHops {
			out = append(out, bundle.Route{Dest: dest, Hops: best})
		}
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].Dest[:]) < string(out[j].Dest[:]) })
	return out
}

func (t *table) list() []RouteInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []RouteInfo
	for dest, m := range t.routes {
		for _, r := range m {
			out = append(out, RouteInfo{Dest: dest, Via: r.via, Hops: r.hops, Live: r.live, Seen: r.seen})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Dest != out[j].Dest {
			return string(out[i].Dest[:]) < string(out[j].Dest[:])
		}
		return out[i].Hops < out[j].Hops
	})
	return out
}
