package radiolink

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

func TestFiveRadiosOneHour(t *testing.T) {
	s := newSimNet(t, 42, 5, sf9, nil)
	// d and e cannot hear each other (hidden terminals): carrier sense
	// cannot stop them colliding at a, b and c.
	s.ch.SetRSSI(s.nodes[3].sim, s.nodes[4].sim, -150)
	s.ch.SetRSSI(s.nodes[4].sim, s.nodes[3].sim, -150)
	s.meetSome(t, 10*time.Minute, 3)
	rng := rand.New(rand.NewPCG(42, 43))
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	end := s.clock.Now().Add(time.Hour)
	delivered := 0
	for s.clock.Now().Before(end) {
		for k := 0; k < 3; k++ {
			a := s.nodes[rng.IntN(5)]
			b := s.nodes[rng.IntN(5)]
			if a != b {
				size := 10 + rng.IntN(200)
				if rng.IntN(5) == 0 {
					size = 300 + rng.IntN(3000)
				}
				if l := a.links[b.addr]; l != nil {
					_ = l.Send(dead, make([]byte, size)) // a full queue is fine here
				}
			}
		}
		s.clock.Advance(time.Second)
		for _, n := range s.nodes {
			n.accept()
			e := n.radio.eng
			if e.ReassemblyBytes() > e.cfg.ReassemblyTotal {
				t.Fatalf("reassembly memory %d above the cap %d", e.ReassemblyBytes(), e.cfg.ReassemblyTotal)
			}
			for _, nb := range e.nbs {
				if nb.queued > e.cfg.QueueLimit {
					t.Fatalf("queue %d above the cap %d", nb.queued, e.cfg.QueueLimit)
				}
			}
			for _, l := range n.links {
				for {
					if _, ok := l.TryRecv(); !ok {
						break
					}
					delivered++
				}
			}
		}
	}
	var coll uint64
	for _, n := range s.nodes {
		for _, l := range n.links {
			coll += l.RadioStats().Collisions
			break // one link per radio: the count is radio-wide
		}
	}
	if coll == 0 {
		t.Fatal("no collisions visible in the stats after an hour of five radios")
	}
	if delivered == 0 {
		t.Fatal("nothing delivered")
	}
	t.Logf("delivered %d frames, collisions (all radios) %d", delivered, coll)
}
