package kiss_test

import (
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/transports/kiss"
	"github.com/ternmesh/tern/transports/kiss/kisstest"
)

type idLog struct {
	mu  sync.Mutex
	clk *kisstest.Clock
	at  []time.Duration
	t0  time.Time
}

func (l *idLog) send() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at = append(l.at, l.clk.Now().Sub(l.t0))
	return nil
}

func (l *idLog) times() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.at...)
}

func newIDTest() (*kiss.Identifier, *idLog) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &idLog{clk: kisstest.NewClock(t0), t0: t0}
	return kiss.NewIdentifier(l.clk, 0, 0, l.send, nil), l
}

func TestIdentifyAtEndOfSeries(t *testing.T) {
	id, l := newIDTest()
	id.Transmitted()
	l.clk.Advance(20 * time.Second)
	id.Transmitted() // still the same series: the silence timer restarts
	l.clk.Advance(29 * time.Second)
	if got := l.times(); len(got) != 0 {
		t.Fatalf("identified at %v before 30 s of silence", got)
	}
	l.clk.Advance(time.Second)
	if got := l.times(); len(got) != 1 || got[0] != 50*time.Second {
		t.Fatalf("identifications at %v, want one at 50s", got)
	}
	// No traffic, no further identification.
	l.clk.Advance(time.Hour)
	if got := l.times(); len(got) != 1 || l.clk.Pending() != 0 {
		t.Fatalf("identifications at %v and %d timers after the series ended", got, l.clk.Pending())
	}
}

func TestIdentifyEveryTenMinutes(t *testing.T) {
	id, l := newIDTest()
	// Transmit every 20 s for 25 minutes.
	for i := 0; i < 75; i++ {
		id.Transmitted()
		l.clk.Advance(20 * time.Second)
	}
	l.clk.Advance(time.Minute)
	got := l.times()
	want := []time.Duration{10 * time.Minute, 20 * time.Minute, 24*time.Minute + 40*time.Second + 30*time.Second}
	if len(got) != len(want) {
		t.Fatalf("identifications at %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("identifications at %v, want %v", got, want)
		}
	}
	if id.Sent() != 3 {
		t.Errorf("Sent() = %d", id.Sent())
	}
}

func TestIdentifierFinish(t *testing.T) {
	id, l := newIDTest()
	id.Finish() // nothing transmitted: nothing to identify
	if len(l.times()) != 0 {
		t.Fatal("identified without transmitting")
	}
	id, l = newIDTest()
	id.Transmitted()
	l.clk.Advance(time.Second)
	id.Finish()
	l.clk.Advance(time.Hour)
	if got := l.times(); len(got) != 1 || got[0] != time.Second {
		t.Fatalf("identifications at %v, want one at close (1s)", got)
	}
}

func TestIDFrame(t *testing.T) {
	b, err := kiss.IDFrame(kiss.Address{Call: "N0CALL", SSID: 7}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := kiss.DecodeAX25(b)
	if f.Dest.String() != "ID" || f.Src.String() != "N0CALL-7" || string(f.Info) != "N0CALL-7" || !f.IsUI() {
		t.Fatalf("ID frame %+v", f)
	}
}
