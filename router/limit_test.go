package router

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// TestFloodingNeighbourIsRateLimited: B takes at most 200 bundles/s (burst
// 40) from each neighbour. A hands it 300 at once: B acknowledges only
// what fits its rate, counts the rest as rate-limited, and A keeps them
// and retries, so all 300 arrive, once each. C, sending at the same time,
// is not held back by A's flood.
func TestFloodingNeighbourIsRateLimited(t *testing.T) {
	b := newTunedNode(t, 'B', func(c *Config) { c.IngressRate, c.IngressBurst = 200, 40 })
	// A retries often, so the test does not wait out long backoffs.
	a := newTunedNode(t, 'A', func(c *Config) { c.RetryMin, c.RetryMax = 100*time.Millisecond, 400*time.Millisecond })
	c := newTestNode(t, 'C')
	// Everything is queued first, so it all goes at once when the links
	// come up.
	for i := range 300 {
		if err := a.r.Submit(dataBundle(t, b.addr, fmt.Sprintf("flood %03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if err := c.r.Submit(dataBundle(t, b.addr, fmt.Sprintf("calm %02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	connect(a, b)
	connect(c, b)
	seen := map[string]bool{}
	calm := 0
	deadline := time.After(30 * time.Second)
	for len(seen) < 320 {
		select {
		case x := <-b.arrive:
			p := string(x.Payload)
			if seen[p] {
				t.Fatalf("delivered twice: %q", p)
			}
			seen[p] = true
			if strings.HasPrefix(p, "calm") {
				calm++
			}
		case <-deadline:
			t.Fatalf("only %d of 320 arrived", len(seen))
		}
	}
	m := b.r.Metrics()
	aStats := m.ByNeighbour[addrString(a.addr)]
	if aStats.RateLimited == 0 || m.Rejected["rate-limited"] != aStats.RateLimited {
		t.Fatalf("A's flood: %d rate-limited, reason count %d; want it held back and counted", aStats.RateLimited, m.Rejected["rate-limited"])
	}
	if cs := m.ByNeighbour[addrString(c.addr)]; cs.RateLimited != 0 {
		t.Errorf("C's 20 bundles were rate-limited %d times, want none", cs.RateLimited)
	}
	var prom bytes.Buffer
	m.WritePrometheus(&prom)
	for _, want := range []string{"tern_bundles_rate_limited_total " + fmt.Sprint(aStats.RateLimited), `tern_bundles_rejected_by_reason_total{reason="rate-limited"}`} {
		if !strings.Contains(prom.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	eventually(t, "A released everything once acknowledged", func() bool { return a.st.Stats().Bundles == 0 })
}

// TestIngressLimitsPerNeighbourAndLinkClass: with the defaults a neighbour
// may hand over 60,000 bundles at once over the internet and 30,000/s
// after that, but only 100 at once and 5/s over a radio; each neighbour
// and each link class has its own allowance.
func TestIngressLimitsPerNeighbourAndLinkClass(t *testing.T) {
	g := newIngress(Config{IngressRate: 30000, IngressBurst: 60000, RadioIngressRate: 5, RadioIngressBurst: 100})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := addrOf('A'), addrOf('B')
	count := func(n bundle.Addr, radio bool, tries int) int {
		ok := 0
		for range tries {
			if g.allow(n, radio, now) {
				ok++
			}
		}
		return ok
	}
	if got := count(a, true, 200); got != 100 {
		t.Fatalf("radio burst: %d of 200 taken, want 100", got)
	}
	if got := count(a, false, 70000); got != 60000 {
		t.Fatalf("internet burst: %d of 70,000 taken, want 60,000 (the radio allowance is separate)", got)
	}
	if got := count(b, true, 10); got != 10 {
		t.Fatalf("another neighbour: %d of 10 taken, want all", got)
	}
	now = now.Add(time.Second)
	if got, want := count(a, false, 40000), 30000; got != want {
		t.Fatalf("a second later over the internet: %d taken, want %d", got, want)
	}
	if got := count(a, true, 10); got != 5 {
		t.Fatalf("a second later over the radio: %d taken, want 5", got)
	}
}

func addrOf(c byte) bundle.Addr { return bundle.Addr{c} }
