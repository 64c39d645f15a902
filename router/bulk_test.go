package router

import (
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// airLink marks a link as a shared radio that can estimate airtime.
type airLink struct{ transports.Link }

func (airLink) RadioInfo() transports.RadioInfo { return transports.RadioInfo{Radio: "test"} }

// 100 bytes a second.
func (airLink) EstimateAirtime(n int64) time.Duration {
	return time.Duration(n) * 10 * time.Millisecond
}

func TestBulkBundleHeldOffRadioGoesOverOtherLink(t *testing.T) {
	a, b := newTestNode(t, 'A'), newTestNode(t, 'B')
	la, lb := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: b.addr})
	spy := spyLink{Link: la, sent: make(chan []byte, 64)}
	a.r.AddLink(airLink{spy})
	b.r.AddLink(airLink{lb})
	eventually(t, "A sees B over the radio", hasRoute(a, b.addr))

	bulk := dataBundle(t, b.addr, "file chunk, not for radio")
	bulk.Flags |= bundle.FlagBulk
	bulk.Payload = append(bulk.Payload, make([]byte, 48<<10)...)
	if err := a.r.Submit(bulk); err != nil {
		t.Fatal(err)
	}
	if err := a.r.Submit(dataBundle(t, b.addr, "a text")); err != nil {
		t.Fatal(err)
	}
	waitArrival(t, b, "a text")
	p := a.r.BulkProblem(b.addr, int64(len(bulk.Payload)))
	if !strings.Contains(p, "held off radio") || !strings.Contains(p, "--over-radio") || !strings.Contains(p, "49 KB") || !strings.Contains(p, "about 8m12s") {
		t.Errorf("BulkProblem = %q, want the reason, the size, the airtime estimate and the way out", p)
	}
	if held, _ := a.r.BulkAirtime(b.addr, 1); !held {
		t.Error("BulkAirtime says not held while the only link is a radio")
	}
	eventually(t, "A holds only the bulk bundle, waiting", func() bool { return a.st.Stats().Bundles == 1 })

	// A faster link appears: the bulk bundle takes it.
	connect(a, b)
	select {
	case got := <-b.arrive:
		if got.ID != bulk.ID {
			t.Fatalf("delivered %x, want the bulk bundle", got.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the bulk bundle never crossed the non-radio link")
	}
	if p := a.r.BulkProblem(b.addr, 1); p != "" {
		t.Errorf("with a non-radio link up, BulkProblem = %q, want none", p)
	}
	for len(spy.sent) > 0 {
		x, err := bundle.Unmarshal(<-spy.sent)
		if err != nil {
			t.Fatal(err)
		}
		if x.Flags&bundle.FlagBulk != 0 {
			t.Fatal("a bulk bundle went on the radio link")
		}
	}
}

func TestFormatAirtime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		450 * time.Millisecond:               "450ms",
		83 * time.Second:                     "1m23s",
		(2*60 + 3) * time.Minute:             "2h3m",
		(30*60 + 20) * time.Minute:           "30h",
		5*time.Minute + 400*time.Millisecond: "5m0s",
	} {
		if got := FormatAirtime(d); got != want {
			t.Errorf("FormatAirtime(%v) = %q, want %q", d, got, want)
		}
	}
}
