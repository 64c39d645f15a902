package radiosim

import (
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestClockOrder(t *testing.T) {
	c := NewClock(t0)
	var got []string
	c.AfterFunc(2*time.Second, func() { got = append(got, "b1") })
	c.AfterFunc(time.Second, func() {
		got = append(got, "a")
		// Scheduled now for the same instant as b1: runs after b1.
		c.At(t0.Add(2*time.Second), func() { got = append(got, "b3") })
	})
	c.AfterFunc(2*time.Second, func() { got = append(got, "b2") })
	stop := c.AfterFunc(1500*time.Millisecond, func() { got = append(got, "stopped") })
	if !stop.Stop() || stop.Stop() {
		t.Fatal("Stop should report true once, then false")
	}
	if n := c.Advance(1500 * time.Millisecond); n != 1 || !c.Now().Equal(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("Advance ran %d events, now %v", n, c.Now())
	}
	c.At(t0, func() { got = append(got, "past") }) // in the past: runs at the current time
	if n := c.Run(); n != 4 {
		t.Fatalf("Run ran %d events", n)
	}
	want := []string{"a", "past", "b1", "b2", "b3"}
	if len(got) != len(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
	if !c.Now().Equal(t0.Add(2*time.Second)) || c.Pending() != 0 {
		t.Errorf("now %v pending %d", c.Now(), c.Pending())
	}
	if c.Step() {
		t.Errorf("Step with nothing pending")
	}
}
