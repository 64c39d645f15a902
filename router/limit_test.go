package router

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
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
