package router

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// vclock is a virtual clock for routers: Now for Config.Now, and one
// timer per router for Config.after (an announce loop waits on one timer
// at a time, so arming a new one replaces the last).
type vclock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[int]*vtimer
	armed  chan struct{} // closed and replaced whenever a timer is armed
}

type vtimer struct {
	at  time.Time
	ch  chan time.Time // nil once fired
	seq uint64
}

func newVClock() *vclock {
	return &vclock{now: time.Unix(1_800_000_000, 0), timers: map[int]*vtimer{}, armed: make(chan struct{})}
}

func (c *vclock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *vclock) after(slot int) func(time.Duration) <-chan time.Time {
	return func(d time.Duration) <-chan time.Time {
		c.mu.Lock()
		defer c.mu.Unlock()
		tm := &vtimer{at: c.now.Add(d), ch: make(chan time.Time, 1), seq: 1}
		if old := c.timers[slot]; old != nil {
			tm.seq = old.seq + 1
		}
		c.timers[slot] = tm
		close(c.armed)
		c.armed = make(chan struct{})
		return tm.ch
	}
}

// advance moves the clock on by d, firing the timers that fall due on the
// way in time order; after each it waits until that router's loop has
// armed its next timer (its round is done).
func (c *vclock) advance(t *testing.T, d time.Duration) {
	t.Helper()
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		slot, due := 0, (*vtimer)(nil)
		for s, tm := range c.timers {
			if tm.ch != nil && !tm.at.After(end) && (due == nil || tm.at.Before(due.at)) {
				slot, due = s, tm
			}
		}
		if due == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		if due.at.After(c.now) {
			c.now = due.at
		}
		due.ch <- c.now
		due.ch = nil
		for c.timers[slot].seq == due.seq {
			armed := c.armed
			c.mu.Unlock()
			select {
			case <-armed:
			case <-time.After(10 * time.Second):
				t.Fatalf("router %d did not finish its announce round", slot)
			}
			c.mu.Lock()
		}
	}
}

// countLink counts the announces sent over it.
type countLink struct {
	transports.Link
	announces *atomic.Int64
}

func (l countLink) Send(ctx context.Context, f []byte) error {
	if b, err := bundle.Unmarshal(f); err == nil && b.Kind == bundle.KindAnnounce {
		l.announces.Add(1)
	}
	return l.Link.Send(ctx, f)
}

// pacedNet is routers on one virtual clock with the default announce
// interval (30 s), joined by links that count announces.
type pacedNet struct {
	t     *testing.T
	vc    *vclock
	nodes map[byte]*testNode
	sent  map[[2]byte]*atomic.Int64 // announces by (from, to)
}

// newPacedNet starts a router per name; announceMax 0 is the default.
func newPacedNet(t *testing.T, names string, announceMax time.Duration) *pacedNet {
	x := &pacedNet{t: t, vc: newVClock(), nodes: map[byte]*testNode{}, sent: map[[2]byte]*atomic.Int64{}}
	for i := range len(names) {
		x.nodes[names[i]] = newTunedNode(t, names[i], func(c *Config) {
			c.AnnounceInterval, c.AnnounceMax = 30*time.Second, announceMax
			c.Now, c.after = x.vc.Now, x.vc.after(i)
		})
	}
	return x
}

// connect joins nodes a and b; it returns a's end.
func (x *pacedNet) connect(a, b byte) *transports.MemLink {
	na, nb := x.nodes[a], x.nodes[b]
	la, lb := transports.NewMemPair(transports.MemOptions{AddrA: na.addr, AddrB: nb.addr, Authenticated: true})
	for _, k := range [][2]byte{{a, b}, {b, a}} {
		if x.sent[k] == nil {
			x.sent[k] = new(atomic.Int64)
		}
	}
	na.r.AddLink(countLink{la, x.sent[[2]byte{a, b}]})
	nb.r.AddLink(countLink{lb, x.sent[[2]byte{b, a}]})
	return la.(*transports.MemLink)
}

// announces is how many went from a to b so far.
func (x *pacedNet) announces(a, b byte) int64 { return x.sent[[2]byte{a, b}].Load() }

func (x *pacedNet) total() int64 {
	var n int64
	for _, c := range x.sent {
		n += c.Load()
	}
	return n
}

// live reports whether node at has a live route to dest through via.
func (x *pacedNet) live(at, dest, via byte) bool {
	return liveVia(x.nodes[at], bundle.Addr{dest}, bundle.Addr{via})()
}

// until moves virtual time on in steps of 100 ms until cond holds,
// letting the routers handle what arrived (real time) at every step, and
// returns the virtual time it took.
func (x *pacedNet) until(what string, cond func() bool) time.Duration {
	x.t.Helper()
	start := x.vc.Now()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			x.t.Fatalf("timed out waiting until %s (virtual %v)", what, x.vc.Now().Sub(start))
		}
		<-tick.C
		if !cond() {
			x.vc.advance(x.t, 100*time.Millisecond)
		}
	}
	return x.vc.Now().Sub(start)
}

// line builds A–B–C and waits until A and C reach each other through B.
func line(t *testing.T, announceMax time.Duration) *pacedNet {
	x := newPacedNet(t, "ABC", announceMax)
	x.connect('A', 'B')
	x.connect('B', 'C')
	x.until("A and C learn each other through B", func() bool { return x.live('A', 'C', 'B') && x.live('C', 'A', 'B') })
	return x
}

// quietHour counts the announces a stable line A–B–C sends in an hour.
func quietHour(t *testing.T, announceMax time.Duration) int64 {
	x := line(t, announceMax)
	before := x.total()
	for range 360 {
		x.vc.advance(t, 10*time.Second)
	}
	if !x.live('A', 'C', 'B') || !x.live('C', 'A', 'B') {
		t.Fatal("routes through B were lost in a quiet hour")
	}
	n := x.total() - before
	t.Logf("announce max %v: %d announces in an hour (A→B %d, B→A %d, B→C %d, C→B %d in all)", announceMax, n,
		x.announces('A', 'B'), x.announces('B', 'A'), x.announces('B', 'C'), x.announces('C', 'B'))
	return n
}

// TestQuietNetworkSuppressesAnnounces: in a stable line A–B–C, announces
// back off to one per AnnounceMax per link, where they went every
// AnnounceInterval (30 s) before: 4 link directions × 120 an hour.
func TestQuietNetworkSuppressesAnnounces(t *testing.T) {
	every := quietHour(t, 30*time.Second) // AnnounceMax = AnnounceInterval: no back-off
	paced := quietHour(t, 0)              // the default, 10 min
	if every < 4*115 {
		t.Errorf("without back-off %d announces in an hour, want about 480 (one per 30 s on 4 link directions)", every)
	}
	// Per direction: 30 s, 1, 2, 4, 8 min, then every 10 min: 9 or 10.
	if paced > 4*10 {
		t.Errorf("paced: %d announces in a quiet hour, want at most 40", paced)
	}
}

// TestSuppressedRoutesStayLive: over three quiet hours (three times the
// route lifetime) every route stays live at every step although announces
// are suppressed; when the link really goes silent, the routes through it
// still expire.
func TestSuppressedRoutesStayLive(t *testing.T) {
	x := newPacedNet(t, "ABC", 0)
	ab := x.connect('A', 'B')
	x.connect('B', 'C')
	x.until("A and C learn each other through B", func() bool { return x.live('A', 'C', 'B') && x.live('C', 'A', 'B') })
	for i := range 180 {
		x.vc.advance(t, time.Minute)
		for _, r := range [][3]byte{{'A', 'C', 'B'}, {'C', 'A', 'B'}, {'A', 'B', 'B'}, {'C', 'B', 'B'}} {
			if !x.live(r[0], r[1], r[2]) {
				t.Fatalf("after %d min %c lost its route to %c through %c", i+1, r[0], r[1], r[2])
			}
		}
	}
	// Route expiry still works: A–B stops carrying anything (without
	// closing), so A hears no more announces and its route to C expires.
	ab.SetDown(true)
	for range 65 {
		x.vc.advance(t, time.Minute)
	}
	eventually(t, "A's route to C through a silent B expires", func() bool { return !x.live('A', 'C', 'B') })
}

// TestRouteChangeAnnouncedPromptly: after two quiet hours (announces at
// their slowest), a new route and its withdrawal each reach the neighbour
// within one AnnounceInterval (the Trickle's Min), in fact at once; a
// flapping link costs the neighbour at most a burst of announces.
func TestRouteChangeAnnouncedPromptly(t *testing.T) {
	x := newPacedNet(t, "ABC", 0)
	x.connect('A', 'B')
	x.until("A learns B", func() bool { return x.live('A', 'B', 'B') })
	for range 120 {
		x.vc.advance(t, time.Minute)
	}
	bc := x.connect('B', 'C')
	took := x.until("A learns C through B", func() bool { return x.live('A', 'C', 'B') })
	t.Logf("a new route reached the neighbour after %v (virtual)", took)
	if took > 30*time.Second {
		t.Errorf("a new route took %v to reach the neighbour, want within 30 s", took)
	}
	x.vc.advance(t, time.Minute)
	bc.Close()
	took = x.until("A's route to C is withdrawn", func() bool { return !x.live('A', 'C', 'B') })
	t.Logf("a withdrawal reached the neighbour after %v (virtual)", took)
	if took > 30*time.Second {
		t.Errorf("a withdrawal took %v to reach the neighbour, want within 30 s", took)
	}

	// Flapping (40 times), all at one virtual instant: B's announces to A stop after
	// a burst; the last state still reaches A once AnnounceHold passed.
	x.vc.advance(t, time.Minute)
	before := x.announces('B', 'A')
	for i := range 2 * announceBurst {
		l := x.connect('B', 'C')
		eventually(t, fmt.Sprintf("B sees C (flap %d)", i), func() bool { return x.live('B', 'C', 'C') })
		if i < 2*announceBurst-1 {
			l.Close()
			eventually(t, fmt.Sprintf("B loses C (flap %d)", i), func() bool { return !x.live('B', 'C', 'C') })
		}
	}
	n := x.announces('B', 'A') - before
	t.Logf("40 flaps at one instant: %d announces to the neighbour", n)
	if n > announceBurst {
		t.Errorf("40 flaps cost A %d announces at once, want at most %d", n, announceBurst)
	}
	if took := x.until("A learns C after the flapping", func() bool { return x.live('A', 'C', 'B') }); took > 30*time.Second {
		t.Errorf("the final route took %v to reach the neighbour, want within 30 s", took)
	}
}

// TestRestartedNeighbourHearsAtOnce: a neighbour whose announces start
// again from a low sequence number restarted and lost our routes: it gets
// an announce at once, even with announces at their slowest. A neighbour
// that comes back over a new link does too.
func TestRestartedNeighbourHearsAtOnce(t *testing.T) {
	x := newPacedNet(t, "AB", 0)
	x.connect('A', 'B')
	x.until("A learns B", func() bool { return x.live('A', 'B', 'B') })

	// N is driven by hand over a link that stays up across its restart
	// (as a radio link does).
	a := x.nodes['A']
	lr := &liar{addr: bundle.Addr{'N'}, got: map[bundle.ID]bundle.Addr{}}
	la, ln := transports.NewMemPair(transports.MemOptions{AddrA: a.addr, AddrB: lr.addr, Authenticated: true})
	lr.l = ln
	go func() { // N reads what A sends it
		for {
			if _, err := ln.Recv(context.Background()); err != nil {
				return
			}
		}
	}()
	var sent atomic.Int64 // A's announces to N
	a.r.AddLink(countLink{la, &sent})
	say := func(seq uint64) {
		p, err := (&bundle.Announce{Seq: seq, Routes: []bundle.Route{{Dest: lr.addr}}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		lr.control(t, a.addr, bundle.KindAnnounce, p)
	}
	say(100)
	x.until("A learns N", func() bool { return x.live('A', 'N', 'N') })
	for i := range 120 {
		x.vc.advance(t, time.Minute)
		say(uint64(101 + i)) // N announces on, unchanged
	}
	eventually(t, "A heard N's last announce", func() bool {
		a.r.mu.Lock()
		n := a.r.nbrs[lr.addr]
		a.r.mu.Unlock()
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.lastSeq == 220
	})
	// At once, then 30 s, 1, 2, 4, 8 min later, then every 10 min.
	got := sent.Load()
	if got > 16 {
		t.Errorf("A sent N %d announces in two quiet hours, want at most 16", got)
	}
	say(1) // N restarted
	eventually(t, "A announces to the restarted N at once", func() bool { return sent.Load() == got+1 })

	// B comes back over a new link (restarted, or its old link died).
	before := x.announces('A', 'B')
	x.connect('A', 'B')
	if n := x.announces('A', 'B') - before; n != 1 {
		t.Errorf("A sent %d announces to B over its new link at once, want 1", n)
	}
}
