package radiolink

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/radiosim"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var sf9 = airtime.Params{SF: 9, BandwidthHz: 125000, CR: 1, CRC: true}

// simClock adapts radiosim.Clock to Clock.
type simClock struct{ c *radiosim.Clock }

func (s simClock) Now() time.Time { return s.c.Now() }
func (s simClock) AfterFunc(d time.Duration, f func()) func() bool {
	return s.c.AfterFunc(d, f).Stop
}

type simNode struct {
	radio *Radio
	sim   *radiosim.Radio
	addr  bundle.Addr
	links map[bundle.Addr]*Link
}

// accept collects new links.
func (n *simNode) accept() {
	for {
		l, ok := n.radio.TryAccept()
		if !ok {
			return
		}
		n.links[l.addr] = l
	}
}

type simNet struct {
	clock *radiosim.Clock
	ch    *radiosim.Channel
	nodes []*simNode
}

func addrOf(i int) bundle.Addr {
	var a bundle.Addr
	for j := range a {
		a[j] = byte(i*37 + j*11 + 1)
	}
	return a
}

// newSimNet builds n radios on one channel; mod sets each Config.
func newSimNet(t testing.TB, seed uint64, n int, p airtime.Params, mod func(i int, c *Config)) *simNet {
	t.Helper()
	clock := radiosim.NewClock(t0)
	ch := radiosim.NewChannel(clock, radiosim.Config{Seed: seed})
	s := &simNet{clock: clock, ch: ch}
	for i := 0; i < n; i++ {
		sr, err := ch.AddRadio(radiosim.RadioConfig{Name: string(rune('a' + i)), Params: p, FrequencyHz: 868_100_000, TxPowerDBm: 14})
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Self: addrOf(i), Name: sr.Name(), MaxFrame: 255, Airtime: p, HelloInterval: time.Minute,
			Rand: rand.New(rand.NewPCG(seed, uint64(i)))}
		if mod != nil {
			mod(i, &cfg)
		}
		node := &simNode{sim: sr, addr: cfg.Self, links: map[bundle.Addr]*Link{}}
		r, err := New(cfg, simClock{clock}, Hooks{
			Transmit: func(f []byte) error { _, err := sr.Transmit(f); return err },
			Busy:     sr.ChannelBusy,
			Losses: func() (uint64, uint64) {
				st := sr.Stats()
				return uint64(st.LostCollision), 0
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		node.radio = r
		sr.SetReceiver(func(f radiosim.Frame) {
			r.Receive(RxFrame{Data: f.Data, RSSI: f.RSSI, SNR: f.SNR, At: f.End})
		})
		s.nodes = append(s.nodes, node)
	}
	return s
}

func (s *simNet) setLoss(p float64) {
	for _, a := range s.nodes {
		for _, b := range s.nodes {
			if a != b {
				_ = s.ch.SetLoss(a.sim, b.sim, p)
			}
		}
	}
}

// meet runs the clock until every node has a link to every other.
func (s *simNet) meet(t testing.TB, limit time.Duration) {
	t.Helper()
	s.meetSome(t, limit, len(s.nodes)-1)
}

// meetSome runs the clock until every node has at least want links.
func (s *simNet) meetSome(t testing.TB, limit time.Duration, want int) {
	t.Helper()
	end := s.clock.Now().Add(limit)
	for s.clock.Now().Before(end) {
		s.clock.Advance(time.Second)
		done := true
		for _, n := range s.nodes {
			n.accept()
			if len(n.links) < want {
				done = false
			}
		}
		if done {
			return
		}
	}
	t.Fatalf("nodes did not hear each other within %v", limit)
}

func (s *simNet) airtime() time.Duration {
	var d time.Duration
	for _, n := range s.nodes {
		d += n.sim.Stats().Airtime
	}
	return d
}
