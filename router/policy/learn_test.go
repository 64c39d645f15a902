package policy

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// TestLearnShortcutsChangeNothing drives two tables with the same random
// announces, withdrawals, expiries, sweeps and penalty changes. One uses
// Learn's remembered announces and Advertise's incremental rebuild; the
// other forgets both before every call, so it looks every route up and
// recomputes every best. They must agree on everything they report.
func TestLearnShortcutsChangeNothing(t *testing.T) {
	self := bundle.Addr{'S'}
	addr := func(i int) bundle.Addr { return bundle.Addr{'n', byte(i)} }
	cfg := TableConfig{LiveFor: 3 * time.Minute, StaleFor: 20 * time.Minute, HoldDown: 2 * time.Minute}
	fast, slow := NewTable(self, cfg), NewTable(self, cfg)
	pen := map[bundle.Addr]uint8{}
	for _, tab := range []*Table{fast, slow} {
		tab.SetPenalty(func(v bundle.Addr) uint8 { return pen[v] })
	}
	rng := rand.New(rand.NewPCG(1, 2))
	last := map[bundle.Addr][]bundle.Route{} // each neighbour's last announce
	now := t0
	for step := range 5000 {
		now = now.Add(time.Duration(rng.IntN(20)) * time.Second)
		nb := addr(rng.IntN(8))
		var got, want any
		switch op := rng.IntN(100); {
		case op < 70:
			routes := mutate(rng, last[nb], addr)
			last[nb] = routes
			units := uint8(1 + rng.IntN(2))
			for _, v := range slow.vias {
				v.forget()
			}
			got, want = fast.Learn(nb, units, routes, now), slow.Learn(nb, units, routes, now)
		case op < 78:
			got, want = fast.NeighbourDown(nb, now), slow.NeighbourDown(nb, now)
		case op < 80:
			pen[nb] = uint8(rng.IntN(3)) * 10
		default:
			got, want = fast.Expire(now), slow.Expire(now)
		}
		if got != want {
			t.Fatalf("step %d: fast table says %v, slow %v", step, got, want)
		}
		to := addr(rng.IntN(8))
		slow.adv.ok = false
		if a, b := fast.Advertise(to, 0), slow.Advertise(to, 0); !slices.Equal(a, b) {
			t.Fatalf("step %d: announces differ:\n%v\n%v", step, a, b)
		}
		if a, b := fast.Routes(), slow.Routes(); !reflect.DeepEqual(stripStamps(a), stripStamps(b)) {
			t.Fatalf("step %d: routes differ:\n%+v\n%+v", step, a, b)
		}
		checkFeasibleCounts(t, fast)
	}
}

// mutate changes a few routes of an announce (or starts one) and returns
// it sorted as Advertise would list it.
func mutate(rng *rand.Rand, prev []bundle.Route, addr func(int) bundle.Addr) []bundle.Route {
	hops := map[bundle.Addr]uint8{}
	for _, r := range prev {
		hops[r.Dest] = r.Hops
	}
	for range rng.IntN(4) {
		d := addr(rng.IntN(40))
		if rng.IntN(4) == 0 {
			delete(hops, d)
		} else {
			hops[d] = uint8(rng.IntN(MaxMetric + 3))
		}
	}
	out := make([]bundle.Route, 0, len(hops))
	for d, h := range hops {
		out = append(out, bundle.Route{Dest: d, Hops: h})
	}
	slices.SortFunc(out, cmpRoute)
	return out
}

func stripStamps(rs []Route) []Route {
	for i := range rs {
		rs[i].stamp = 0
	}
	return rs
}

func checkFeasibleCounts(t *testing.T, tab *Table) {
	t.Helper()
	for dest, e := range tab.dests {
		n := 0
		for _, r := range e.routes {
			if r.Live && r.Feasible {
				n++
			}
		}
		if n != e.feasible {
			t.Fatalf("%v: %d live feasible routes counted, %d there", dest, e.feasible, n)
		}
	}
}

// TestLearnPassesOverImpossibleClaims: a neighbour that claims another
// node at metric 0 (only a node is 0 from itself) gets no route for it;
// its honest claims stand.
func TestLearnPassesOverImpossibleClaims(t *testing.T) {
	self, liar, d, e := bundle.Addr{'S'}, bundle.Addr{'L'}, bundle.Addr{'D'}, bundle.Addr{'E'}
	tab := NewTable(self, TableConfig{LiveFor: time.Hour, StaleFor: 24 * time.Hour, HoldDown: time.Minute})
	tab.Learn(liar, 1, []bundle.Route{{Dest: d, Hops: 0}, {Dest: e, Hops: 2}}, t0)
	up := func(bundle.Addr) bool { return true }
	if via, live, _ := tab.NextHop(d, bundle.Addr{}, up); live {
		t.Errorf("a metric-0 claim for D made a live route via %v", via)
	}
	if via, live, _ := tab.NextHop(e, bundle.Addr{}, up); !live || via != liar {
		t.Errorf("the honest claim for E: via %v, live %v; want live via the neighbour", via, live)
	}
}
