package policy

import (
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// TestRestoreAndCandidates: a route remembered across a restart comes back
// stale, is listed with its penalty, turns live when its neighbour
// announces it again, and expires like any stale route.
func TestRestoreAndCandidates(t *testing.T) {
	a, b, d := bundle.Addr{'A'}, bundle.Addr{'B'}, bundle.Addr{'D'}
	tab := NewTable(a, TableConfig{StaleFor: time.Hour})
	up := func(bundle.Addr) bool { return true }
	if !tab.Restore(d, b, 3, t0) || tab.Restore(d, b, 3, t0) {
		t.Fatal("Restore: want the first call to add the route and the second to leave it")
	}
	if tab.Restore(a, b, 1, t0) || tab.Restore(d, b, MaxMetric, t0) {
		t.Fatal("restored a route to ourselves or one at MaxMetric")
	}
	if _, live, ok := tab.NextHop(d, bundle.Addr{}, up); !ok || live {
		t.Fatalf("restored route: ok %v live %v, want a stale custodian", ok, live)
	}
	tab.SetPenalty(func(via bundle.Addr) uint8 {
		if via == b {
			return 7
		}
		return 0
	})
	cs := tab.Candidates(d)
	if len(cs) != 1 || cs[0].Via != b || cs[0].Metric != 3 || cs[0].Effective != 10 || cs[0].Live {
		t.Fatalf("candidates %+v, want B at 3 (10 with its penalty), stale", cs)
	}
	if tab.Penalty(b) != 7 {
		t.Fatalf("Penalty(B) = %d, want 7", tab.Penalty(b))
	}
	tab.SetPenalty(nil)
	tab.Learn(b, 1, []bundle.Route{{Dest: d, Hops: 2}}, t0.Add(time.Minute))
	if via, live, _ := tab.NextHop(d, bundle.Addr{}, up); via != b || !live {
		t.Fatalf("after B announced D again: via %v live %v, want B live", via, live)
	}
	tab.NeighbourDown(b, t0.Add(2*time.Minute))
	tab.Expire(t0.Add(3 * time.Hour))
	if len(tab.Candidates(d)) != 0 {
		t.Fatal("a stale restored route outlived StaleFor")
	}
}
