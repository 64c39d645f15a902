package policy

import (
	"bytes"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// A neighbour announces its whole route list every time, and most of it
// is what it said last time. Learn therefore remembers, per neighbour,
// the routes its last announce made live (with the Route and the
// destination entry each one refreshed) and walks the new announce
// against that list: a route announced again with the same hop count
// over a link of the same worth is refreshed in place, without looking
// it up, and only the routes of the last announce that the new one does
// not repeat can be withdrawn. The result is exactly what looking every
// route up would give (feasibility, hold-down and expiry are evaluated
// now, as before); only the look-ups are saved.

// learned is one route of a neighbour's last announce as Learn applied
// it: the hop count announced, the live route it refreshed and that
// route's destination entry.
type learned struct {
	r    *Route
	e    *destEntry
	hops uint8
}

// forget drops the remembered announce: a route it points to may be
// gone (sweep) or a new Route may stand for one of its destinations.
func (v *viaEntry) forget() {
	v.last, v.lastOK = v.last[:0], false
}

// Learn applies a whole announce from neighbour from, reached over a link
// worth units: listed routes become live, routes through from that it no
// longer lists turn stale. It reports whether routing may have changed.
// Routes to this node, to from itself and impossible claims (skipped) are
// passed over.
func (t *Table) Learn(from bundle.Addr, units uint8, routes []bundle.Route, now time.Time) bool {
	changed := t.update(from, from, 0, units, now)
	t.learns++
	v := t.via(from)
	sorted := strictlySorted(routes)
	if sorted && v.lastOK && v.lastUnits == units {
		changed = t.learnAgainst(v, from, units, routes, now) || changed
	} else {
		changed = t.learnAll(v, from, units, routes, sorted, now) || changed
	}
	v.learned, v.expiring = now, true
	return changed
}

// skipped reports whether Learn passes over route rt in an announce from
// neighbour from: a route to this node itself, to from (its direct route
// stands for it), or a claim of metric 0 for another node. Only a node is
// 0 from itself and every hop costs at least 1 (Units), so that claim is
// a lie on its face (a liar's cheapest, which drew all of a LAN's traffic
// in the simulator before reputation judged it); a liar that claims 1
// instead is left to reputation and the flood judgement (FloodWatch).
func skipped(self, from bundle.Addr, rt bundle.Route) bool {
	return rt.Dest == self || rt.Dest == from || rt.Hops == 0
}

// learnAll applies routes by looking each one up, then withdraws every
// live route through from that they did not list. It remembers the
// announce for the next Learn when routes are strictly sorted.
func (t *Table) learnAll(v *viaEntry, from bundle.Addr, units uint8, routes []bundle.Route, sorted bool, now time.Time) bool {
	changed := false
	next := t.next[:0]
	for _, rt := range routes {
		if skipped(t.self, from, rt) {
			continue
		}
		c, l := t.learnOne(from, units, rt, now)
		changed = changed || c
		if sorted && l.r != nil {
			next = append(next, l)
		}
	}
	for dest, r := range v.routes {
		if dest != from && r.Live && r.stamp != t.learns {
			r.Seen, changed = now, true
			t.withdraw(t.dests[dest], r, now)
		}
	}
	t.remember(v, next, units, sorted)
	return changed
}

// learnAgainst applies routes (strictly sorted) by merging them with the
// neighbour's last announce (sorted the same way): a route found there
// is refreshed through its remembered pointers, any other is looked up.
// Only live routes of the last announce can need withdrawing, since a
// route through from other than the direct one turns live only in Learn.
func (t *Table) learnAgainst(v *viaEntry, from bundle.Addr, units uint8, routes []bundle.Route, now time.Time) bool {
	changed := false
	last, next, unmatched := v.last, t.next[:0], t.unmatched[:0]
	j := 0
	for _, rt := range routes {
		if skipped(t.self, from, rt) {
			continue
		}
		for j < len(last) && cmpLearned(last[j], rt) < 0 {
			unmatched = append(unmatched, last[j])
			j++
		}
		if j < len(last) && cmpLearned(last[j], rt) == 0 {
			l := last[j]
			j++
			// Same hops over a link of the same worth: the metric is
			// the one that made the route live last time, below
			// MaxMetric.
			t.maybeReset(l.e, now)
			changed = t.refresh(l.e, l.r, rt.Hops, rt.Hops+units, now) || changed
			l.r.stamp = t.learns
			next = append(next, l)
			continue
		}
		c, l := t.learnOne(from, units, rt, now)
		changed = changed || c
		if l.r != nil {
			next = append(next, l)
		}
	}
	unmatched = append(unmatched, last[j:]...)
	for _, l := range unmatched {
		if l.r.Live && l.r.stamp != t.learns {
			l.r.Seen, changed = now, true
			t.withdraw(l.e, l.r, now)
		}
	}
	t.unmatched = unmatched[:0]
	t.remember(v, next, units, true)
	return changed
}

// learnOne applies one listed route by looking it up and stamps it as
// listed. It returns what to remember of it: l.r is nil unless the route
// is now live.
func (t *Table) learnOne(from bundle.Addr, units uint8, rt bundle.Route, now time.Time) (bool, learned) {
	r, e, changed := t.apply(rt.Dest, from, rt.Hops, units, now)
	if r == nil {
		return changed, learned{}
	}
	r.stamp = t.learns
	if !r.Live {
		return changed, learned{}
	}
	return changed, learned{r: r, e: e, hops: rt.Hops}
}

// remember keeps next as v's last announce (when ok) and takes v's old
// list as the table's scratch space for the next Learn.
func (t *Table) remember(v *viaEntry, next []learned, units uint8, ok bool) {
	if !ok {
		next = next[:0]
	}
	t.next, v.last = v.last[:0], next
	v.lastUnits, v.lastOK = units, ok
}

// cmpLearned orders a remembered route against an announced one as
// cmpRoute does.
func cmpLearned(l learned, rt bundle.Route) int {
	if l.hops != rt.Hops {
		return int(l.hops) - int(rt.Hops)
	}
	return bytes.Compare(l.r.Dest[:], rt.Dest[:])
}

// strictlySorted reports whether routes are in cmpRoute order without
// repeats, as Advertise lists them.
func strictlySorted(routes []bundle.Route) bool {
	for i := 1; i < len(routes); i++ {
		if cmpRoute(routes[i-1], routes[i]) >= 0 {
			return false
		}
	}
	return true
}
