package node

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/ternmesh/tern/router"
	"github.com/ternmesh/tern/transports"
)

// TestRadioHistory: readings of a radio neighbour are kept when they
// change (and every radioSampleIdle when they do not), unknown signal
// figures are left out rather than breaking the JSON, links without a
// radio are not charted, and the history is bounded.
func TestRadioHistory(t *testing.T) {
	var s radioStats
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	peer := func(rssi float64, in uint64, used time.Duration) []router.PeerInfo {
		return []router.PeerInfo{
			{Neighbour: "aa", Radio: &transports.RadioInfo{Radio: "rnode:/dev/ttyUSB0", RSSI: rssi, SNR: 7.5, FramesIn: in, AirtimeUsed: used, AirtimeRemaining: 36*time.Second - used}},
			{Neighbour: "bb"}, // a QUIC neighbour
		}
	}
	s.record(peer(math.NaN(), 0, 0), t0)
	s.record(peer(-92, 1, 300*time.Millisecond), t0.Add(2*time.Second))
	s.record(peer(-92, 1, 300*time.Millisecond), t0.Add(4*time.Second))  // unchanged: skipped
	s.record(peer(-92, 1, 300*time.Millisecond), t0.Add(40*time.Second)) // unchanged but 30 s on: kept
	h := s.list()
	if len(h) != 1 || h[0].Neighbour != "aa" || len(h[0].Samples) != 3 {
		t.Fatalf("history %+v, want 3 readings of neighbour aa only", h)
	}
	first, second := h[0].Samples[0], h[0].Samples[1]
	if first.RSSI != nil || second.RSSI == nil || *second.RSSI != -92 || second.AirtimeUsedMs != 300 || second.AirtimeLeftMs != 35700 {
		t.Errorf("readings %+v then %+v", first, second)
	}
	if _, err := json.Marshal(h); err != nil {
		t.Errorf("the history does not encode: %v", err)
	}
	for i := range radioSamplesKept + 10 {
		s.record(peer(-90, uint64(10+i), 0), t0.Add(time.Minute+time.Duration(i)*time.Second))
	}
	if got := len(s.list()[0].Samples); got != radioSamplesKept {
		t.Errorf("%d readings kept, want at most %d", got, radioSamplesKept)
	}
}
