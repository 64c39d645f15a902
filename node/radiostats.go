package node

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/ternmesh/tern/router"
)

// The node keeps a short history of every radio neighbour's link (signal
// and airtime) so that the network page can chart it: a volunteer checking
// a relay on a mast wants to see whether the signal is steady and how much
// of the legal airtime the day used, not one number.

// RadioSample is one reading of a radio neighbour's link.
type RadioSample struct {
	At   time.Time `json:"at"`
	RSSI *float64  `json:"rssi,omitempty"` // dBm of the neighbour's last frame; absent when unknown
	SNR  *float64  `json:"snr,omitempty"`  // dB
	// AirtimeUsedMs is the airtime used in the regional window, and
	// AirtimeLeftMs what remains of it (both 0 for radios without a
	// budget, such as packet radio).
	AirtimeUsedMs int64  `json:"airtime_used_ms"`
	AirtimeLeftMs int64  `json:"airtime_left_ms"`
	FramesIn      uint64 `json:"frames_in"`
	FramesOut     uint64 `json:"frames_out"`
}

// RadioHistory is the recent readings of one radio neighbour, oldest first.
type RadioHistory struct {
	Neighbour string        `json:"neighbour"`
	Radio     string        `json:"radio"`
	Samples   []RadioSample `json:"samples"`
}

const (
	radioSampleEvery = 2 * time.Second  // how often links are read
	radioSampleIdle  = 30 * time.Second // an unchanged link is still recorded this often
	radioSamplesKept = 720              // per neighbour: 24 min at the busiest, 6 h when idle
)

// radioStats is the history of every radio neighbour. Safe for concurrent
// use.
type radioStats struct {
	mu   sync.Mutex
	hist map[string]*RadioHistory // by neighbour and radio
}

// record reads the radio figures of every neighbour in peers at now. A
// reading that changed nothing is kept only every radioSampleIdle.
func (s *radioStats) record(peers []router.PeerInfo, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hist == nil {
		s.hist = map[string]*RadioHistory{}
	}
	for _, p := range peers {
		ri := p.Radio
		if ri == nil {
			continue
		}
		key := p.Neighbour + " " + ri.Radio
		h := s.hist[key]
		if h == nil {
			h = &RadioHistory{Neighbour: p.Neighbour, Radio: ri.Radio}
			s.hist[key] = h
		}
		smp := RadioSample{At: now, RSSI: finite(ri.RSSI), SNR: finite(ri.SNR),
			AirtimeUsedMs: ri.AirtimeUsed.Milliseconds(), AirtimeLeftMs: ri.AirtimeRemaining.Milliseconds(),
			FramesIn: ri.FramesIn, FramesOut: ri.FramesOut}
		if n := len(h.Samples); n > 0 {
			last := h.Samples[n-1]
			if sameReading(last, smp) && now.Sub(last.At) < radioSampleIdle {
				continue
			}
		}
		h.Samples = append(h.Samples, smp)
		if len(h.Samples) > radioSamplesKept {
			h.Samples = append(h.Samples[:0], h.Samples[len(h.Samples)-radioSamplesKept:]...)
		}
	}
}

// list returns a copy of every history, sorted by neighbour.
func (s *radioStats) list() []RadioHistory {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RadioHistory, 0, len(s.hist))
	for _, h := range s.hist {
		out = append(out, RadioHistory{Neighbour: h.Neighbour, Radio: h.Radio, Samples: append([]RadioSample(nil), h.Samples...)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Neighbour != out[j].Neighbour {
			return out[i].Neighbour < out[j].Neighbour
		}
		return out[i].Radio < out[j].Radio
	})
	return out
}

func sameReading(a, b RadioSample) bool {
	return a.FramesIn == b.FramesIn && a.FramesOut == b.FramesOut && a.AirtimeUsedMs == b.AirtimeUsedMs && eqPtr(a.RSSI, b.RSSI) && eqPtr(a.SNR, b.SNR)
}

func eqPtr(a, b *float64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// sampleRadios records radio readings until the node stops.
func (n *Node) sampleRadios() {
	defer n.wg.Done()
	t := time.NewTicker(radioSampleEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.radioStats.record(n.router.Peers(), n.cfg.Now())
		}
	}
}

// RadioHistory returns the recent readings of every radio neighbour, for
// the network page's charts, with a reading taken now.
func (n *Node) RadioHistory() []RadioHistory {
	n.radioStats.record(n.router.Peers(), n.cfg.Now())
	return n.radioStats.list()
}
