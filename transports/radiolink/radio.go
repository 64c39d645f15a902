package radiolink

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// Radio is one radio's link layer: an Engine, a clock and a transmitter,
// yielding one transports.Link per neighbour through Accept. Build it with
// New (any transmitter, e.g. a simulated radio on a virtual clock) or
// Attach (a real Device, wall clock; then call Run).
type Radio struct {
	mu     sync.Mutex // guards eng and everything below
	eng    *Engine
	clock  Clock
	name   string
	tx     func(frame []byte) error
	busy   func() bool
	losses func() (collisions, crc uint64)
	links  map[bundle.Addr]*Link
	accept []*Link
	closed bool
	wakeCh chan struct{} // signalled on Accept and Close

	pumpMu   sync.Mutex // serialises pump
	timerAt  time.Time
	stopTime func() bool

	log        *slog.Logger
	txErrors   uint64    // transmissions the device refused (guarded by mu)
	lastTxWarn time.Time // rate limit of the warning
}

// Hooks connect a Radio to its medium.
type Hooks struct {
	// Transmit puts one frame on the air (required). In a simulation it
	// returns at once; on a real device it blocks until sent.
	Transmit func(frame []byte) error
	// Busy is the carrier sense; nil when the device has none.
	Busy func() bool
	// Losses reports collisions and CRC losses if the device counts them.
	Losses func() (collisions, crc uint64)
}

// New returns a radio on clock. Frames received from the air go to Receive.
func New(cfg Config, clock Clock, h Hooks) (*Radio, error) {
	if h.Transmit == nil || clock == nil {
		return nil, errors.New("radiolink: New needs a clock and a Transmit hook")
	}
	eng, err := NewEngine(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Radio{eng: eng, clock: clock, name: cfg.Name, tx: h.Transmit, busy: h.Busy, losses: h.Losses,
		links: make(map[bundle.Addr]*Link), wakeCh: make(chan struct{}), log: log}
	r.kick()
	return r, nil
}

// Engine returns the radio's core, for inspection in tests (do not call its
// methods while the radio runs).
func (r *Radio) Engine() *Engine { return r.eng }

// Receive hands the radio a frame heard on the air.
func (r *Radio) Receive(rx RxFrame) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.eng.Receive(r.clock.Now(), rx)
	r.handleEvents()
	r.mu.Unlock()
	r.kick()
}

// handleEvents turns engine events into links and deliveries; r.mu held.
func (r *Radio) handleEvents() {
	for _, ev := range r.eng.takeEvents() {
		switch ev.kind {
		case evNeighbour:
			if l := r.links[ev.addr]; l == nil || l.isClosed() {
				l := newLink(r, ev.addr)
				r.links[ev.addr] = l
				r.accept = append(r.accept, l)
				if len(r.accept) > 64 {
					r.accept[0].closeLocal()
					r.accept = r.accept[1:]
				}
				r.signal()
			}
		case evDeliver:
			if l := r.links[ev.addr]; l != nil {
				l.push(ev.data)
			}
		case evBye:
			if l := r.links[ev.addr]; l != nil {
				l.closeLocal()
				delete(r.links, ev.addr)
			}
		}
	}
}

// signal wakes everyone waiting on wakeCh; r.mu held.
func (r *Radio) signal() {
	close(r.wakeCh)
	r.wakeCh = make(chan struct{})
}

// kick makes the pump run now.
func (r *Radio) kick() { r.schedule(r.clock.Now()) }

func (r *Radio) schedule(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed && r.eng.QueuedFrames() == 0 {
		return
	}
	if r.stopTime != nil && !r.timerAt.After(at) {
		return // a pump is already due no later
	}
	if r.stopTime != nil {
		r.stopTime()
	}
	r.timerAt = at
	r.stopTime = r.clock.AfterFunc(max(at.Sub(r.clock.Now()), 0), r.pump)
}

// pump polls the engine, transmits what it returns, and re-arms itself.
func (r *Radio) pump() {
	r.pumpMu.Lock()
	defer r.pumpMu.Unlock()
	r.mu.Lock()
	r.stopTime = nil
	busy := r.busy != nil && r.busy()
	frame, wake := r.eng.Poll(r.clock.Now(), busy)
	if frame != nil {
		r.signal() // room in the queues: wake blocked Sends
	}
	r.mu.Unlock()
	if frame != nil {
		if err := r.tx(frame); err != nil {
			// A lost frame (repair and custody resend it); count it and
			// say so, at most every 30 s, so a failing radio is visible.
			r.mu.Lock()
			r.txErrors++
			n, now := r.txErrors, r.clock.Now()
			warn := now.Sub(r.lastTxWarn) >= 30*time.Second
			if warn {
				r.lastTxWarn = now
			}
			r.mu.Unlock()
			if warn {
				r.log.Warn("radio could not transmit a frame", "radio", r.name, "failures_so_far", n, "err", err)
			}
		}
	}
	if !wake.IsZero() {
		r.schedule(wake)
	}
}

// Accept returns the link to the next newly heard neighbour.
func (r *Radio) Accept(ctx context.Context) (transports.Link, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, fmt.Errorf("radio %s: %w", r.name, transports.ErrClosed)
		}
		if len(r.accept) > 0 {
			l := r.accept[0]
			r.accept = r.accept[1:]
			r.mu.Unlock()
			return l, nil
		}
		ch := r.wakeCh
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// TryAccept returns a pending new link without blocking (for simulations).
func (r *Radio) TryAccept() (*Link, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.accept) == 0 {
		return nil, false
	}
	l := r.accept[0]
	r.accept = r.accept[1:]
	return l, true
}

// Addr names the radio as "radio:<name>".
func (r *Radio) Addr() string { return "radio:" + r.name }

// Close closes every link and stops accepting. Frames already queued are
// dropped.
func (r *Radio) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	for _, l := range r.links {
		l.closeLocal()
	}
	if r.stopTime != nil {
		r.stopTime()
		r.stopTime = nil
	}
	r.signal()
	return nil
}

// Stats returns the radio-wide report.
func (r *Radio) Stats() RadioStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statsLocked(nil)
}

// RadioStats is what a radio link reports for `tern peers`.
type RadioStats struct {
	Radio string
	// Peer counts the traffic with this neighbour; Total the whole radio.
	Peer, Total Counters
	// LastRSSI (dBm) and LastSNR (dB) of the neighbour's last frame; NaN
	// when unknown.
	LastRSSI, LastSNR float64
	// Collisions and CRCLosses as the device reports them (0 if it does not).
	Collisions, CRCLosses uint64
	// AirtimeUsed in the budget's window (one hour for ETSI) and the longest
	// frame the budget allows now; both 0 without a budget.
	AirtimeUsed, AirtimeRemaining time.Duration
	// NextFree is when the next frame may go (the budget, the radio's own
	// transmission, backoff); zero when a frame may go now.
	NextFree time.Time
	// Queued frames waiting on this radio (all neighbours).
	Queued int
	// ReassemblyBytes held for incomplete incoming messages.
	ReassemblyBytes int
	// TxErrors counts frames the device failed to transmit.
	TxErrors uint64
}

func (r *Radio) statsLocked(nb *neighbour) RadioStats {
	e := r.eng
	s := RadioStats{Radio: r.name, Total: e.stats, LastRSSI: nan, LastSNR: nan, Queued: e.QueuedFrames(), ReassemblyBytes: e.ra.total, TxErrors: r.txErrors}
	if nb != nil {
		s.Peer = nb.stats
		if nb.heard {
			s.LastRSSI, s.LastSNR = nb.rssi, nb.snr
		}
	}
	if r.losses != nil {
		s.Collisions, s.CRCLosses = r.losses()
	}
	now := r.clock.Now()
	next := e.txEnd
	if e.backoff.After(next) {
		next = e.backoff
	}
	if b := e.cfg.Budget; b != nil {
		if at, ok := b.ReserveAt(now, e.toa(e.cfg.MaxFrame)); ok && at.After(next) {
			next = at
		}
		if u, ok := b.(BudgetUsage); ok {
			s.AirtimeUsed, s.AirtimeRemaining = u.Used(time.Hour), u.Remaining()
		}
	}
	if next.After(now) {
		s.NextFree = next
	}
	return s
}

// Link is the transports.Link to one neighbour on a radio.
type Link struct {
	r      *Radio
	peer   transports.Peer
	addr   bundle.Addr
	mu     sync.Mutex
	inbox  [][]byte
	drops  uint64
	count  transports.Stats // router frames through this link
	closed bool
	wake   chan struct{}
}

// inboxLimit bounds frames delivered but not yet read by the router.
const inboxLimit = 256

func newLink(r *Radio, a bundle.Addr) *Link {
	return &Link{r: r, addr: a, wake: make(chan struct{}),
		peer: transports.Peer{Addr: a, Remote: "radio:" + r.name + "/" + hex.EncodeToString(a[:2])}}
}

func (l *Link) push(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if len(l.inbox) >= inboxLimit {
		l.inbox = l.inbox[1:]
		l.drops++
	}
	l.inbox = append(l.inbox, b)
	l.count.FramesIn++
	l.count.BytesIn += uint64(len(b))
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *Link) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *Link) closeLocal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.wake)
	}
}

// Send queues frame for the neighbour. When the queue is full it waits for
// room until ctx ends, then fails with ErrQueueFull. It never waits for
// airtime: a frame held by the duty-cycle budget is queued (see RadioStats).
func (l *Link) Send(ctx context.Context, frame []byte) error {
	err := l.untilRoom(ctx, func(now time.Time) error {
		return l.r.eng.Enqueue(now, l.addr, append([]byte(nil), frame...))
	})
	if err == nil {
		l.mu.Lock()
		l.count.FramesOut++
		l.count.BytesOut += uint64(len(frame))
		l.mu.Unlock()
	}
	return err
}

// untilRoom runs queue (under the radio's lock) until it does not fail
// with ErrQueueFull or ctx ends, then kicks the pump after a success.
func (l *Link) untilRoom(ctx context.Context, queue func(now time.Time) error) error {
	for {
		l.r.mu.Lock()
		if l.isClosed() {
			l.r.mu.Unlock()
			return fmt.Errorf("radio link to %s: %w", l.peer.Remote, transports.ErrClosed)
		}
		err := queue(l.r.clock.Now())
		ch := l.r.wakeCh
		l.r.mu.Unlock()
		if err == nil {
			l.r.kick()
			return nil
		}
		if !errors.Is(err, ErrQueueFull) {
			return err
		}
		select {
		case <-ch: // any progress; re-check
		case <-ctx.Done():
			return fmt.Errorf("radio link to %s: %w (%w)", l.peer.Remote, err, ctx.Err())
		}
	}
}

// Recv returns the next frame from the neighbour.
func (l *Link) Recv(ctx context.Context) ([]byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l.mu.Lock()
		if len(l.inbox) > 0 {
			b := l.inbox[0]
			l.inbox = l.inbox[1:]
			l.mu.Unlock()
			return b, nil
		}
		if l.closed {
			l.mu.Unlock()
			return nil, fmt.Errorf("radio link to %s: %w", l.peer.Remote, transports.ErrClosed)
		}
		ch := l.wake
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// TryRecv returns a delivered frame without blocking (for simulations).
func (l *Link) TryRecv() ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.inbox) == 0 {
		return nil, false
	}
	b := l.inbox[0]
	l.inbox = l.inbox[1:]
	return b, true
}

// MTU is the largest frame the radio carries (fragmented on air).
func (l *Link) MTU() int { return l.r.eng.cfg.MTU }

// Peer is the neighbour, as it named itself in its hello (unauthenticated).
func (l *Link) Peer() transports.Peer { return l.peer }

// Close closes the link and tells the neighbour (a bye frame).
func (l *Link) Close() error {
	if l.isClosed() {
		return nil
	}
	l.closeLocal()
	l.r.mu.Lock()
	if l.r.links[l.addr] == l {
		delete(l.r.links, l.addr)
		l.r.eng.Close(l.addr)
	}
	l.r.mu.Unlock()
	l.r.kick()
	return nil
}

// Stats implements transports.StatsLink: router frames (not air frames)
// sent and delivered on this link.
func (l *Link) Stats() transports.Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// RadioInfo implements transports.RadioLink: the figures `tern peers` shows.
func (l *Link) RadioInfo() transports.RadioInfo {
	s := l.RadioStats()
	return transports.RadioInfo{
		Radio: s.Radio, RSSI: s.LastRSSI, SNR: s.LastSNR,
		AirtimeUsed: s.AirtimeUsed, AirtimeRemaining: s.AirtimeRemaining, NextFree: s.NextFree,
		Queued: s.Queued, Collisions: s.Collisions,
		FramesIn: s.Peer.FramesIn, FramesOut: s.Peer.FramesOut, Retransmissions: s.Peer.Retransmissions,
		TxErrors: s.TxErrors,
	}
}

// BitRate implements transports.RateLink: the radio's rate for full
// frames, from its time on air (0 when the device has no airtime model).
func (l *Link) BitRate() float64 {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	n := l.r.eng.cfg.MaxFrame
	toa := l.r.eng.toa(n)
	if toa <= 0 {
		return 0
	}
	return float64(8*n) / toa.Seconds()
}

var (
	_ transports.RateLink    = (*Link)(nil)
	_ transports.AirtimeLink = (*Link)(nil)
)

// AirtimeLeft implements transports.AirtimeLink: the share of the regional
// duty-cycle allowance left (1 without a budget, or with one that does not
// report it).
func (l *Link) AirtimeLeft() float64 {
	l.r.mu.Lock()
	b := l.r.eng.cfg.Budget
	l.r.mu.Unlock()
	if d, ok := b.(interface{ DutyLeft() float64 }); ok {
		return d.DutyLeft()
	}
	return 1
}

// ClearOnly implements transports.ClearOnlyLink: true on a radio configured
// as amateur radio (Config.ClearOnly), where encryption is forbidden.
func (l *Link) ClearOnly() bool { return l.r.eng.cfg.ClearOnly }

// RadioStats reports this neighbour and its radio.
func (l *Link) RadioStats() RadioStats {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	return l.r.statsLocked(l.r.eng.nbs[l.addr])
}
