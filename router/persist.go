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

// Delivery receipts are kept in the store too (bucket "routes", key
// "receipts"): a node that restarts right after a delivery must still pass
// its receipt on, or the hedges and spare copies elsewhere would wait for a
// receipt that never comes and judge honest neighbours badly. The list is
// rewritten after each batch of new receipts (at most once per
// SummaryDelay) and when the router closes; a crash in between loses only
// the newest, which the hedges' own timeout then covers.
var receiptsKey = []byte("receipts")

// saveReceipts writes the receipt log (IDs, oldest first) when it grew
// since the last save.
func (r *Router) saveReceipts() {
	r.dtn.mu.Lock()
	seq := r.dtn.rcpt.seq
	if seq == r.dtn.savedSeq {
		r.dtn.mu.Unlock()
		return
	}
	v := make([]byte, 0, 16*len(r.dtn.rcpt.ents))
	for _, e := range r.dtn.rcpt.ents {
		v = append(v, e.id[:]...)
	}
	r.dtn.mu.Unlock()
	if err := r.cfg.Store.Bucket(routesBucket).Put(receiptsKey, v); err != nil {
		r.log.Warn("saving delivery receipts failed", "err", err)
		return
	}
	r.dtn.mu.Lock()
	r.dtn.savedSeq = max(r.dtn.savedSeq, seq)
	r.dtn.mu.Unlock()
}

// loadReceipts restores the saved receipt log.
func (r *Router) loadReceipts() {
	v, err := r.cfg.Store.Bucket(routesBucket).Get(receiptsKey)
	if err != nil || len(v) == 0 {
		return
	}
	if len(v)%16 != 0 {
		r.log.Warn("saved delivery receipts are damaged; starting without them", "bytes", len(v))
		return
	}
	r.dtn.mu.Lock()
	defer r.dtn.mu.Unlock()
	for i := 0; i < len(v); i += 16 {
		r.dtn.rcpt.add(bundle.ID(v[i:i+16]), bundle.Addr{})
	}
	r.dtn.savedSeq = r.dtn.rcpt.seq
}
