package radiolink

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/region"
)

func TestEU868DutyCycle(t *testing.T) {
	reg, err := region.Lookup("EU868")
	if err != nil {
		t.Fatal(err)
	}
	band, err := reg.Band(868_100_000)
	if err != nil {
		t.Fatal(err)
	}
	if band.DutyCycle != 0.01 {
		t.Fatalf("868.1 MHz is in %s with duty cycle %v, want 1%%", band.Name, band.DutyCycle)
	}
	s := newSimNet(t, 7, 2, sf9, nil)
	budget := region.NewBudget(band, s.clock.Now) // on the virtual clock
	s.nodes[0].radio.eng.cfg.Budget = budget      // before any frame goes
	type tx struct {
		start time.Time
		toa   time.Duration
	}
	var txs []tx
	s.meet(t, 5*time.Minute)
	a, b := s.nodes[0], s.nodes[1]
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	rng := rand.New(rand.NewPCG(1, 2))
	end := s.clock.Now().Add(10 * time.Minute)
	var sawQueued bool
	for s.clock.Now().Before(end) {
		// Saturate: keep a's queue full with frames of random size.
		for {
			err := a.links[b.addr].Send(dead, make([]byte, 20+rng.IntN(600)))
			if errors.Is(err, ErrQueueFull) {
				break
			}
			if err != nil {
				t.Fatalf("Send while saturated: %v (must queue, not fail)", err)
			}
		}
		before := a.sim.Stats()
		s.clock.Advance(50 * time.Millisecond)
		now := a.sim.Stats()
		if now.Sent > before.Sent {
			// one frame per step at most: its airtime is the increase
			txs = append(txs, tx{s.clock.Now(), now.Airtime - before.Airtime})
		}
		if st := a.links[b.addr].RadioStats(); !st.NextFree.IsZero() && st.NextFree.Sub(s.clock.Now()) > time.Minute && !sawQueued {
			// Budget spent: a Send is still accepted and the stats say when it goes.
			sawQueued = true
		}
	}
	if !sawQueued {
		t.Fatal("the budget never ran out in 10 minutes of saturated sending")
	}
	if v := budget.Violations(); v != 0 {
		t.Fatalf("%d transmissions broke the duty cycle", v)
	}
	// Check every one-hour window starting at a transmission.
	for i := range txs {
		var sum time.Duration
		for j := i; j < len(txs) && txs[j].start.Sub(txs[i].start) < time.Hour; j++ {
			sum += txs[j].toa
		}
		if sum > 36*time.Second+time.Second { // step granularity: start times are approximate
			t.Fatalf("%v on air in the hour from %v, limit 36 s", sum, txs[i].start)
		}
	}
	total := a.sim.Stats().Airtime
	if total > 36*time.Second {
		t.Fatalf("a used %v of airtime in 10 minutes at 1%%: limit is 36 s per hour", total)
	}
	st := a.links[b.addr].RadioStats()
	t.Logf("airtime used %v, remaining %v, queued %d, next free in %v", st.AirtimeUsed, st.AirtimeRemaining, st.Queued, st.NextFree.Sub(s.clock.Now()))
	if st.Queued == 0 || st.NextFree.IsZero() {
		t.Fatalf("stats do not show the queued frames and when they go: %+v", st)
	}
}

// TestLinkReportsRateAndAirtimeLeft: what the router costs a radio path
// with: the bit rate of the modulation and the share of the duty-cycle
// budget left, which falls as the radio sends.
func TestLinkReportsRateAndAirtimeLeft(t *testing.T) {
	reg, _ := region.Lookup("EU868")
	band, _ := reg.Band(868_100_000)
	s := newSimNet(t, 3, 2, sf9, nil)
	budget := region.NewBudget(band, s.clock.Now)
	s.nodes[0].radio.eng.cfg.Budget = budget
	s.meet(t, 5*time.Minute)
	l := s.nodes[0].links[s.nodes[1].addr]
	if r := l.BitRate(); r < 1000 || r > 1800 {
		t.Errorf("SF9/125 kHz reports %.0f bit/s, want about 1.4 kbit/s", r)
	}
	before := l.AirtimeLeft()
	for range 20 {
		if err := l.Send(context.Background(), make([]byte, 200)); err != nil {
			t.Fatal(err)
		}
	}
	s.clock.Advance(2 * time.Minute)
	if after := l.AirtimeLeft(); after >= before || after <= 0 {
		t.Errorf("airtime left %v before 20 frames, %v after: want it to fall", before, after)
	}
	if l := s.nodes[1].links[s.nodes[0].addr]; l.AirtimeLeft() != 1 {
		t.Errorf("a radio without a budget reports %v left, want 1", l.AirtimeLeft())
	}
}
