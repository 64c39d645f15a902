package radiosim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

type soak struct {
	log        []string
	radios     []*Radio
	ch         *Channel
	c          *Clock
	maxPending int
	maxInAir   int
	maxIncome  int
}

// runRandom runs five radios sending random frames at random times (mean
// gap meanGap each) for d of virtual time, with loss, shadowing and capture.
// Everything random comes from seed.
func runRandom(t *testing.T, seed uint64, d, meanGap time.Duration) *soak {
	t.Helper()
	s := &soak{}
	s.c = NewClock(t0)
	s.ch = NewChannel(s.c, Config{
		Seed:     seed,
		Capture:  true,
		PathLoss: &LogDistance{Exponent: 2.9, ShadowingDB: 4},
		Trace: func(e Event) {
			s.log = append(s.log, fmt.Sprintf("%s %s %s>%s %d %.3f %.3f %s",
				e.At.Sub(t0), e.Kind, e.From, e.To, e.Size, e.RSSI, e.SNR, e.Reason))
		},
	})
	traffic := rand.New(rand.NewPCG(seed, 7))
	for i := range 5 {
		r, err := s.ch.AddRadio(RadioConfig{Name: fmt.Sprintf("n%d", i), Params: sf7, FrequencyHz: f868,
			TxPowerDBm: 14, X: float64(i) * 700, Y: float64(i%2) * 300})
		if err != nil {
			t.Fatal(err)
		}
		s.radios = append(s.radios, r)
	}
	for i := range s.radios {
		for j := range s.radios {
			if i != j {
				s.ch.SetLoss(s.radios[i], s.radios[j], 0.05)
			}
		}
	}
	end := t0.Add(d)
	var schedule func(r *Radio)
	schedule = func(r *Radio) {
		gap := time.Duration(traffic.ExpFloat64() * float64(meanGap))
		s.c.AfterFunc(gap, func() {
			if s.c.Now().After(end) {
				return
			}
			frame := make([]byte, 10+traffic.IntN(200))
			for k := range frame {
				frame[k] = byte(traffic.Uint32())
			}
			if !r.Transmitting() {
				if _, err := r.Transmit(frame); err != nil {
					t.Errorf("transmit: %v", err)
				}
			}
			s.maxInAir = max(s.maxInAir, s.ch.InFlight())
			s.maxPending = max(s.maxPending, s.c.Pending())
			for _, x := range s.radios {
				s.ch.mu.Lock()
				s.maxIncome = max(s.maxIncome, len(x.incoming))
				s.ch.mu.Unlock()
			}
			schedule(r)
		})
	}
	for _, r := range s.radios {
		schedule(r)
	}
	s.c.Run()
	return s
}

func TestDeterminism(t *testing.T) {
	a := runRandom(t, 42, 10*time.Minute, 3*time.Second)
	b := runRandom(t, 42, 10*time.Minute, 3*time.Second)
	if len(a.log) < 1000 {
		t.Fatalf("scenario too small: %d events", len(a.log))
	}
	if strings.Join(a.log, "\n") != strings.Join(b.log, "\n") {
		for i := range min(len(a.log), len(b.log)) {
			if a.log[i] != b.log[i] {
				t.Fatalf("same seed diverged at event %d:\n%s\n%s", i, a.log[i], b.log[i])
			}
		}
		t.Fatalf("same seed gave %d and %d events", len(a.log), len(b.log))
	}
	c := runRandom(t, 43, 10*time.Minute, 3*time.Second)
	if strings.Join(a.log, "\n") == strings.Join(c.log, "\n") {
		t.Fatal("a different seed gave the same run")
	}
}

func TestFiveRadiosOneHour(t *testing.T) {
	s := runRandom(t, 1, time.Hour, 2*time.Second)
	var total Stats
	for _, r := range s.radios {
		st := r.Stats()
		total.Sent += st.Sent
		total.Received += st.Received
		total.LostCollision += st.LostCollision
		total.LostWeak += st.LostWeak
		total.LostLink += st.LostLink
		total.LostHalfDuplex += st.LostHalfDuplex
		total.Airtime += st.Airtime
		t.Logf("%s %+v", r.Name(), st)
	}
	// Every frame reaches each of the four other radios with exactly one outcome.
	outcomes := total.Received + total.LostCollision + total.LostWeak + total.LostLink + total.LostHalfDuplex
	if outcomes != 4*total.Sent {
		t.Errorf("%d outcomes for %d frames sent to 4 radios each", outcomes, total.Sent)
	}
	if total.Sent < 5000 || total.LostCollision == 0 || total.LostLink == 0 || total.Received == 0 {
		t.Errorf("expected traffic, collisions and link losses: %+v", total)
	}
	// Bounded memory: only in-flight frames are held.
	if s.ch.InFlight() != 0 || s.c.Pending() != 0 {
		t.Errorf("after the run: %d in flight, %d pending", s.ch.InFlight(), s.c.Pending())
	}
	if s.maxInAir > 5 || s.maxPending > 10 || s.maxIncome > 4 {
		t.Errorf("queues grew: in flight %d, pending events %d, incoming %d", s.maxInAir, s.maxPending, s.maxIncome)
	}
	for _, r := range s.radios {
		if len(r.incoming) != 0 {
			t.Errorf("%s still holds %d receptions", r.Name(), len(r.incoming))
		}
	}
	t.Logf("total %+v, %d events", total, len(s.log))
}
