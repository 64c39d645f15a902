package router

import (
	"encoding/json"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// Routes are kept in the store (bucket "routes") so that a node that
// restarts still knows where each destination was last reached: the
// delay-tolerant choice of custodian must survive a reboot of a Pi on a
// mast. Saved routes come back stale; live ones are relearned from
// neighbours as links come up.

const routesBucket = "routes"

// routesKey holds the whole table as one value: one durable write per save.
var routesKey = []byte("table")

// saveEvery bounds how often an unchanged table (only "seen" times moving)
// is rewritten.
const saveEvery = 5 * time.Minute

// savedRoute is one route as stored.
type savedRoute struct {
	Dest bundle.Addr `json:"dest"`
	Via  bundle.Addr `json:"via"`
	Hops uint8       `json:"hops"` // the route metric (hop counts before metrics: the same for wired hops)
	Seen int64       `json:"seen"` // unix ms
}

// saveRoutes writes the route table to the store when its shape (which
// routes, how many hops) changed, or every saveEvery.
func (r *Router) saveRoutes() {
	list := r.table.list()
	saved := make([]savedRoute, 0, len(list))
	shape := make([]byte, 0, len(list)*33)
	for _, ri := range list {
		saved = append(saved, savedRoute{Dest: ri.Dest, Via: ri.Via, Hops: ri.Hops, Seen: ri.Seen.UnixMilli()})
		shape = append(append(append(shape, ri.Dest[:]...), ri.Via[:]...), ri.Hops)
	}
	now := r.cfg.Now()
	r.mu.Lock()
	same := string(shape) == r.savedShape && now.Sub(r.savedAt) < saveEvery
	r.mu.Unlock()
	if same {
		return
	}
	v, err := json.Marshal(saved)
	if err == nil {
		err = r.cfg.Store.Bucket(routesBucket).Put(routesKey, v)
	}
	if err != nil {
		r.log.Warn("saving routes failed", "err", err)
		return
	}
	r.mu.Lock()
	r.savedShape, r.savedAt = string(shape), now
	r.mu.Unlock()
}

// loadRoutes restores saved routes as stale ones (their neighbours are not
// connected yet), dropping those older than the TTL.
func (r *Router) loadRoutes() {
	v, err := r.cfg.Store.Bucket(routesBucket).Get(routesKey)
	if err != nil || v == nil {
		return
	}
	var saved []savedRoute
	if err := json.Unmarshal(v, &saved); err != nil {
		r.log.Warn("saved routes are unreadable; starting without them", "err", err)
		return
	}
	now, n := r.cfg.Now(), 0
	for _, sr := range saved {
		seen := time.UnixMilli(sr.Seen)
		if now.Sub(seen) > r.cfg.RouteTTL || sr.Dest == r.cfg.Self {
			continue
		}
		if r.table.restore(sr.Dest, sr.Via, sr.Hops, seen) {
			n++
		}
	}
	if n > 0 {
		r.log.Info("restored routes from the store (stale until neighbours reconnect)", "routes", n)
	}
}
