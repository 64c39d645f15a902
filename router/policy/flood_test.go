package policy

import (
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

func TestFloodWatch(t *testing.T) {
	w := NewFloodWatch()
	liar, hub := bundle.Addr{'L'}, bundle.Addr{'H'}
	t0 := time.Unix(1_700_000_000, 0)
	// A hub refused now and then (once a minute) is never judged flooding.
	for i := range 60 {
		if w.Refused(hub, t0.Add(time.Duration(i)*time.Minute)) {
			t.Fatalf("a neighbour refused once a minute was judged flooding after %d refusals", i+1)
		}
	}
	// A liar refused every second is judged at its 20th refusal, once.
	started := 0
	var at time.Time
	for i := range 120 {
		now := t0.Add(time.Duration(i) * time.Second)
		if w.Refused(liar, now) {
			started++
			at = now
		}
	}
	if started != 1 || !at.Equal(t0.Add(19*time.Second)) {
		t.Fatalf("judged flooding %d times, last at %v: want once, at the 20th refusal", started, at.Sub(t0))
	}
	last := t0.Add(119 * time.Second)
	if !w.Flooding(liar, last.Add(9*time.Minute)) || w.Flooding(hub, last) {
		t.Fatal("want the liar judged flooding for 10 minutes after its last refusal, the hub not")
	}
	// Quiet for the window: trusted again, and judged afresh if it
	// floods again.
	if w.Flooding(liar, last.Add(10*time.Minute)) {
		t.Fatal("the liar is still judged flooding 10 minutes after its last refusal")
	}
	again := last.Add(11 * time.Minute)
	for i := range 19 {
		if w.Refused(liar, again.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("judged again after %d refusals: want 20", i+1)
		}
	}
	if !w.Refused(liar, again.Add(19*time.Second)) {
		t.Fatal("not judged again at the 20th refusal of a new flood")
	}
}
