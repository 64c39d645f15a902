package router

import "testing"

// TestRoutesSurviveRestart: after a restart with no neighbour connected, a
// node still knows where each destination was last reached, and a bundle
// for it is assigned to that custodian (waiting) rather than held unrouted.
func TestRoutesSurviveRestart(t *testing.T) {
	a, b, c := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C')
	connect(a, b)
	connect(b, c)
	eventually(t, "A learns C through B", hasRoute(a, c.addr))
	a.stop() // saves the route table
	a.start(t)
	var found bool
	for _, ri := range a.r.Routes() {
		if ri.Dest == c.addr && ri.Via == b.addr {
			found = true
			if ri.Live {
				t.Error("a restored route is live before its neighbour reconnected")
			}
		}
	}
	if !found {
		t.Fatalf("routes after restart: %+v, want C via B", a.r.Routes())
	}
	if err := a.r.Submit(dataBundle(t, c.addr, "after a reboot")); err != nil {
		t.Fatal(err)
	}
	recs, _ := a.st.ForNextHop(b.addr, 0)
	if len(recs) != 1 {
		t.Fatalf("%d bundles queued for B, want the new one waiting for B", len(recs))
	}
	connect(a, b)
	waitArrival(t, c, "after a reboot")
}
