package radiolink

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// sendAndWait sends frame from a to b and runs virtual time until b has it.
// Like the router's custody timer, it sends again if nothing arrived in
// 60 s (single frames are not acknowledged by the link layer).
func sendAndWait(t *testing.T, s *simNet, a, b *simNode, frame []byte, limit time.Duration) []byte {
	t.Helper()
	end := s.clock.Now().Add(limit)
	var resend time.Time
	for s.clock.Now().Before(end) {
		if !s.clock.Now().Before(resend) {
			if err := a.links[b.addr].Send(context.Background(), frame); err != nil {
				t.Fatalf("Send: %v", err)
			}
			resend = s.clock.Now().Add(time.Minute)
		}
		s.clock.Advance(100 * time.Millisecond)
		if got, ok := b.links[a.addr].TryRecv(); ok {
			return got
		}
	}
	return nil
}

func TestTwoNodesBigFrame(t *testing.T) {
	for _, loss := range []float64{0, 0.1, 0.3} {
		t.Run(fmt.Sprint(loss), func(t *testing.T) {
			s := newSimNet(t, 1, 2, sf9, nil)
			s.setLoss(loss)
			s.meet(t, 10*time.Minute)
			a, b := s.nodes[0], s.nodes[1]
			msg := bytes.Repeat([]byte("0123456789abcdef"), 128)
			got := sendAndWait(t, s, a, b, msg, 5*time.Minute)
			if !bytes.Equal(got, msg) {
				t.Fatalf("2 KB frame not delivered intact (%d bytes)", len(got))
			}
			st := a.links[b.addr].RadioStats()
			t.Logf("loss %.0f%%: retrans %d lost %d repaired %d airtime %v", loss*100, st.Peer.Retransmissions, st.Peer.FragmentsLost, st.Peer.FragmentsRepaired, s.airtime())
		})
	}
}

var _ = bundle.Version
