package router

import (
	"testing"
	"time"
)

// TestHedgeClearedWhenDestinationReturns: A hands a bundle to B on what it
// still believes is a live route to C (C has just left), keeping a hedge;
// C comes back, gets it from B, and the receipt clears every copy.
func TestHedgeClearedWhenDestinationReturns(t *testing.T) {
	a, b, c := newTestNode(t, 'A'), newTestNode(t, 'B'), newTestNode(t, 'C')
	connect(a, b)
	_, cb := connect(b, c)
	eventually(t, "A learns a route to C", hasRoute(a, c.addr))
	if err := a.r.Submit(dataBundle(t, c.addr, "first")); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, c, "first")
	eventually(t, "every store drains", func() bool {
		return a.st.Stats().Bundles == 0 && b.st.Stats().Bundles == 0 && c.st.Stats().Bundles == 0
	})
	cb.Close()
	if err := a.r.Submit(dataBundle(t, c.addr, "while you were away")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bundle waits at B", func() bool { return b.st.Stats().Bundles == 1 })
	connect(b, c)
	waitArrival(t, c, "while you were away")
	eventually(t, "the receipt clears A's and B's copies", func() bool {
		return a.st.Stats().Bundles == 0 && b.st.Stats().Bundles == 0
	})
}

// TestReceiptSurvivesRestartOfTheDestination: C receives a bundle and
// restarts before its receipt could leave (the receipt waits SummaryDelay
// to be batched). After the restart C still passes the receipt on, so A's
// hedge is released instead of waiting out its timeout and blaming B.
func TestReceiptSurvivesRestartOfTheDestination(t *testing.T) {
	slow := func(c *Config) { c.SummaryDelay = time.Hour } // nothing leaves before the restart
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	c := newTunedNode(t, 'C', slow)
	connect(a, b)
	_, cb := connect(b, c)
	eventually(t, "A learns a route to C", hasRoute(a, c.addr))
	if err := a.r.Submit(dataBundle(t, c.addr, "just before a reboot")); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, c, "just before a reboot")
	eventually(t, "A keeps a hedge and B released custody", func() bool {
		return a.st.Stats().Bundles == 1 && b.st.Stats().Bundles == 0
	})
	cb.Close()
	c.stop()
	c.tune = nil
	c.start(t)
	connect(b, c)
	eventually(t, "C's saved receipt clears A's hedge", func() bool { return a.st.Stats().Bundles == 0 })
}
