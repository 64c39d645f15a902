package radiosim

import (
	"container/heap"
	"sync"
	"time"
)

// Clock is a virtual clock with an event queue. Time only moves when Advance,
// RunUntil, Run or Step is called; then scheduled functions run in time order,
// and functions scheduled for the same instant run in the order they were
// scheduled. Nothing ever sleeps in real time.
//
// Scheduled functions run on the goroutine that moves the clock, with no lock
// held, so they may schedule more events or call into a Channel. A Clock is
// safe for concurrent use, but a simulation is only deterministic when one
// goroutine drives it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
	seq uint64
	q   eventQueue
}

// NewClock returns a clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the virtual time. Its method value fits func() time.Time
// parameters such as region.NewBudget's.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Timer is a scheduled function.
type Timer struct {
	c  *Clock
	ev *event
}

// At schedules f to run at t; a time in the past runs at the current time
// the next time the clock moves.
func (c *Clock) At(t time.Time, f func()) *Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.now) {
		t = c.now
	}
	c.seq++
	ev := &event{at: t, seq: c.seq, f: f}
	heap.Push(&c.q, ev)
	return &Timer{c: c, ev: ev}
}

// AfterFunc schedules f to run d after the current virtual time.
func (c *Clock) AfterFunc(d time.Duration, f func()) *Timer {
	return c.At(c.Now().Add(d), f)
}

// Stop cancels the timer. It reports whether the timer was still pending.
func (t *Timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.ev.index < 0 {
		return false
	}
	heap.Remove(&t.c.q, t.ev.index)
	return true
}

// When returns the time the timer fires (or fired).
func (t *Timer) When() time.Time { return t.ev.at }

// Pending returns the number of scheduled events.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.q)
}

// Step runs the next event, moving the clock to its time. It reports false
// when no event is pending.
func (c *Clock) Step() bool {
	c.mu.Lock()
	if len(c.q) == 0 {
		c.mu.Unlock()
		return false
	}
	ev := heap.Pop(&c.q).(*event)
	c.now = ev.at
	c.mu.Unlock()
	ev.f()
	return true
}

// RunUntil runs every event due at or before t, in order, then sets the clock
// to t (if t is later than now). It returns the number of events run.
func (c *Clock) RunUntil(t time.Time) int {
	n := 0
	for {
		c.mu.Lock()
		if len(c.q) == 0 || c.q[0].at.After(t) {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return n
		}
		c.mu.Unlock()
		c.Step()
		n++
	}
}

// Advance runs RunUntil(Now()+d).
func (c *Clock) Advance(d time.Duration) int { return c.RunUntil(c.Now().Add(d)) }

// Run runs events until none is pending and returns how many ran. It does not
// return while events keep scheduling new ones: use Advance or RunUntil for
// open-ended traffic.
func (c *Clock) Run() int {
	n := 0
	for c.Step() {
		n++
	}
	return n
}

type event struct {
	at    time.Time
	seq   uint64
	f     func()
	index int
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}
func (q *eventQueue) Push(x any) {
	ev := x.(*event)
	ev.index = len(*q)
	*q = append(*q, ev)
}
func (q *eventQueue) Pop() any {
	old := *q
	n := len(old)
	ev := old[n-1]
	old[n-1] = nil
	ev.index = -1
	*q = old[:n-1]
	return ev
}
