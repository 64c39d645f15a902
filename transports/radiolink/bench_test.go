package radiolink

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// BenchmarkGoodput reports the share of channel capacity (SF9 bit rate,
// from the airtime model) that becomes delivered bytes of a 20 KB message,
// counting the virtual time from Send to delivery.
func BenchmarkGoodput(b *testing.B) {
	for _, loss := range []float64{0, 0.1, 0.3} {
		b.Run(fmt.Sprintf("loss%.0f", loss*100), func(b *testing.B) {
			var share float64
			for range b.N {
				s := newSimNet(b, 5, 2, sf9, nil)
				s.setLoss(loss)
				s.meet(b, 10*time.Minute)
				start := s.clock.Now()
				msg := bytes.Repeat([]byte{1}, 20000)
				if err := s.nodes[0].links[s.nodes[1].addr].Send(b.Context(), msg); err != nil {
					b.Fatal(err)
				}
				for {
					s.clock.Advance(100 * time.Millisecond)
					if _, ok := s.nodes[1].links[s.nodes[0].addr].TryRecv(); ok {
						break
					}
					if s.clock.Now().Sub(start) > time.Hour {
						b.Fatal("20 KB not delivered in an hour")
					}
				}
				share = float64(len(msg)*8) / s.clock.Now().Sub(start).Seconds() / sf9.BitRate()
			}
			b.ReportMetric(share*100, "goodput-%capacity")
		})
	}
}
