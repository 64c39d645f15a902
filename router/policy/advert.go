package policy

import (
	"bytes"
	"slices"

	"github.com/ternmesh/tern/bundle"
)

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
// split horizon). e is the destination's entry (nil for this node).
type advBest struct {
	e      *destEntry
	dest   bundle.Addr
	via    bundle.Addr
	best   uint8
	second uint8
}

func cmpAdvBest(a, b advBest) int {
	if a.best != b.best {
		return int(a.best) - int(b.best)
	}
	return bytes.Compare(a.dest[:], b.dest[:])
}

// advCache keeps Advertise's per-destination bests between announces. A
// change to a destination's routes marks its entry dirty (Table.touch),
// so a rebuild recomputes only those destinations and merges them back
// into the sorted list; a change of penalties recomputes all of them.
type advCache struct {
	ok    bool
	ver   uint64
	pen   map[bundle.Addr]int
	base  []advBest // sorted by best metric, then address; self first
	gen   uint64    // counts rebuilds of base
	dirty []*destEntry
	fresh []advBest // scratch: the dirty destinations' new bests
}

// touch records a change to e's routes that may alter what Advertise
// says.
func (t *Table) touch(e *destEntry) {
	t.ver++
	if e != nil && !e.dirty {
		e.dirty = true
		t.adv.dirty = append(t.adv.dirty, e)
	}
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
	c := &t.adv
	samePen := c.ok && t.samePenalties(c.pen)
	if samePen && c.ver == t.ver {
		return c.base
	}
	if samePen {
		t.rebuildDirty()
	} else {
		c.pen = t.penalties(c.pen)
		t.rebuildAll()
	}
	c.ok, c.ver = true, t.ver
	c.gen++
	return c.base
}

// penalties fills pen (cleared first) with every neighbour's non-zero
// penalty.
func (t *Table) penalties(pen map[bundle.Addr]int) map[bundle.Addr]int {
	if pen == nil {
		pen = make(map[bundle.Addr]int, len(t.vias))
	}
	clear(pen)
	if t.penalty != nil {
		for via := range t.vias {
			if p := int(t.penalty(via)); p != 0 {
				pen[via] = p
			}
		}
	}
	return pen
}

// samePenalties reports whether penalties would fill exactly pen,
// without building the map.
func (t *Table) samePenalties(pen map[bundle.Addr]int) bool {
	n := 0
	if t.penalty != nil {
		for via := range t.vias {
			if p := int(t.penalty(via)); p != 0 {
				if pen[via] != p {
					return false
				}
				n++
			}
		}
	}
	return n == len(pen)
}

// rebuildAll recomputes every destination's best.
func (t *Table) rebuildAll() {
	c := &t.adv
	for _, e := range c.dirty {
		e.dirty = false
	}
	c.dirty = c.dirty[:0]
	base := append(c.base[:0], advBest{dest: t.self, via: t.self, best: 0, second: MaxMetric})
	for _, e := range t.dests {
		if b, ok := t.bestOf(e); ok {
			base = append(base, b)
		}
	}
	slices.SortFunc(base, cmpAdvBest)
	c.base = base
}

// rebuildDirty recomputes the bests of the destinations touched since
// the last build: the others are kept in order, the new ones sorted and
// merged in.
func (t *Table) rebuildDirty() {
	c := &t.adv
	kept := c.base[:0]
	for _, b := range c.base {
		if b.e == nil || !b.e.dirty {
			kept = append(kept, b)
		}
	}
	fresh := c.fresh[:0]
	for _, e := range c.dirty {
		e.dirty = false
		if b, ok := t.bestOf(e); ok {
			fresh = append(fresh, b)
		}
	}
	clear(c.dirty) // let dropped entries go
	c.dirty = c.dirty[:0]
	slices.SortFunc(fresh, cmpAdvBest)
	c.base = mergeAdvBest(kept, fresh)
	c.fresh = fresh[:0]
}

// bestOf computes e's best and second-best live feasible metrics with
// the cached penalties; ok is false when no route is below MaxMetric.
func (t *Table) bestOf(e *destEntry) (advBest, bool) {
	pen := t.adv.pen
	b := advBest{e: e, dest: e.dest, best: MaxMetric, second: MaxMetric}
	for _, r := range e.routes {
		if !r.Live || !r.Feasible {
			continue
		}
		via := r.Via
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
	return b, b.best < MaxMetric
}

// mergeAdvBest merges fresh into kept (both sorted, no destination in
// both), in kept's backing array, from the back.
func mergeAdvBest(kept, fresh []advBest) []advBest {
	i, n := len(kept)-1, len(kept)+len(fresh)
	out := slices.Grow(kept, len(fresh))[:n]
	for k, j := n-1, len(fresh)-1; j >= 0; k-- {
		if i >= 0 && cmpAdvBest(out[i], fresh[j]) > 0 {
			out[k] = out[i]
			i--
		} else {
			out[k] = fresh[j]
			j--
		}
	}
	return out
}
