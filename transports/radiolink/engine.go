package radiolink

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// ErrQueueFull is returned (wrapped) by Send when the neighbour's queue is
// full and ctx ended before room was made (the channel is slower than the
// router, or the airtime budget is spent). Retry later or route elsewhere.
var ErrQueueFull = errors.New("radio send queue full")

// Budget is the regional airtime limit consulted before every transmission.
// *region.Budget satisfies it. ReserveAt returns the earliest start time,
// at or after the engine's now, for a frame of toa (ok false: it can never
// fit); Commit records a frame that started at start. Both take the
// engine's time, so the budget and the engine never disagree about "now".
type Budget interface {
	ReserveAt(now time.Time, toa time.Duration) (at time.Time, ok bool)
	Commit(start time.Time, toa time.Duration) error
}

// BudgetUsage is an optional capability of a Budget (region.Budget has it)
// used only for reporting.
type BudgetUsage interface {
	Used(window time.Duration) time.Duration
	Remaining() time.Duration
}

// Config sets up one radio's engine. Zero values take the defaults shown.
type Config struct {
	Self bundle.Addr // this node's address (required)
	Name string      // radio name for Remote ("radio:<name>/<short>")
	// MaxFrame is the device's largest frame (255 for LoRa, 256 for AX.25).
	MaxFrame int
	// Airtime gives time on air; nil counts every frame as 0 (no pacing).
	Airtime AirtimeModel
	// Budget is the regional limit; nil is none.
	Budget Budget
	// Rand drives backoff and hello jitter; nil seeds from Self.
	Rand *rand.Rand
	// MTU is the largest router frame carried (fragmented): 64 KiB.
	MTU int
	// QueueLimit bounds the frames waiting per neighbour: 64.
	QueueLimit int
	// ReassemblyPerPeer and ReassemblyTotal bound reassembly memory in
	// bytes: 2*MTU and 8*MTU.
	ReassemblyPerPeer, ReassemblyTotal int
	// ReassemblyTimeout drops a message missing fragments for this long: 2 min.
	ReassemblyTimeout time.Duration
	// MaxRetries caps the repair rounds of one fragmented message: 8.
	MaxRetries int
	// HelloInterval spaces periodic hellos: 10 min.
	HelloInterval time.Duration
	// ControlShare of ControlWindow (by airtime) is the cap on hellos and
	// announces: 0.03 of 10 min.
	ControlShare  float64
	ControlWindow time.Duration
	// Logger receives the radio's warnings (failed transmissions); nil
	// discards them.
	Logger *slog.Logger
	// ClearOnly marks the radio as amateur radio: its links report
	// ClearOnly, so the router never sends encrypted bundles over them.
	ClearOnly bool
	// resendAll makes repair resend every fragment (for measurements).
	resendAll bool
}

func (c *Config) defaults() error {
	if c.MaxFrame < 40 {
		return fmt.Errorf("radiolink: MaxFrame %d is too small: a radio frame must carry at least 40 bytes", c.MaxFrame)
	}
	if c.Rand == nil {
		var s [2]uint64
		for i := 0; i < 8; i++ {
			s[0] = s[0]<<8 | uint64(c.Self[i])
			s[1] = s[1]<<8 | uint64(c.Self[8+i])
		}
		c.Rand = rand.New(rand.NewPCG(s[0], s[1]))
	}
	setD := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	setI := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setI(&c.MTU, 64<<10)
	setI(&c.QueueLimit, 64)
	setI(&c.ReassemblyPerPeer, 2*c.MTU)
	setI(&c.ReassemblyTotal, 8*c.MTU)
	setI(&c.MaxRetries, 8)
	setD(&c.ReassemblyTimeout, 2*time.Minute)
	setD(&c.HelloInterval, 10*time.Minute)
	setD(&c.ControlWindow, 10*time.Minute)
	if c.ControlShare == 0 {
		c.ControlShare = 0.03
	}
	return nil
}

// Priority classes, in the order the scheduler serves them.
const (
	classControl = iota // acks, naks, custody acks, hellos, announces, bye
	classInteractive
	classBulk
	nClasses
)

// txItem is one frame waiting in a class queue.
type txItem struct {
	nb     *neighbour // nil for broadcast (hello)
	frame  []byte
	capped bool    // counts against the 3 % control cap
	msg    *outMsg // fragmented message this item drives (bulk)
}

// outMsg is a router frame queued to one neighbour.
type outMsg struct {
	nb      *neighbour
	body    []byte // compact or raw body
	compact bool
	hash    uint32
	seq     uint16
	chunks  [][]byte
	acked   []bool
	missing []bool // reported missing by an ack at least once
	pending []int  // fragment indexes still to send this round
	waiting bool   // burst sent, waiting for an ack
	retries int
	deadln  time.Time
	sentAny bool
}

// recentMsg remembers a compact frame sent, for "cannot expand" NAKs.
type recentMsg struct {
	nb     *neighbour
	hash   uint32
	raw    []byte
	resent bool
}

// Engine is the sans-IO core of one radio: feed it received frames with
// Receive and router frames with Enqueue, and call Poll for the next frame
// to transmit and the time to call again. It starts no goroutine and reads
// no clock: every method takes now. It is not safe for concurrent use
// (Radio serialises it).
type Engine struct {
	cfg    Config
	book   *book
	nbs    map[bundle.Addr]*neighbour
	order  []*neighbour
	q      [nClasses][]txItem
	bulk   []*outMsg
	ra     reassembler
	recent []recentMsg

	started      bool
	txEnd        time.Time
	nextHello    time.Time
	lonelyHello  time.Duration // current hello interval while no neighbour is known
	lastHello    time.Time
	lastHelloReq time.Time
	helloPending bool
	ctl          []span // capped control airtime in the window
	backoff      time.Time

	airQueued int // aired bundles waiting (broadcasts, air.go)

	stats  Counters
	events []event
}

type span struct {
	start time.Time
	toa   time.Duration
}

// event is something Radio must act on after an Engine call.
type event struct {
	kind int // evNeighbour, evDeliver, evBye
	addr bundle.Addr
	data []byte
}

const (
	evNeighbour = iota
	evDeliver
	evBye
)

// NewEngine returns an engine for cfg.
func NewEngine(cfg Config) (*Engine, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, nbs: make(map[bundle.Addr]*neighbour), book: newBook(cfg.Self)}
	e.ra.init(&e.cfg)
	e.ra.onDrop = e.countDrop
	return e, nil
}

func (e *Engine) toa(n int) time.Duration {
	if e.cfg.Airtime == nil {
		return 0
	}
	return e.cfg.Airtime.TimeOnAir(n)
}

// linkCode is the link address length code for frames between self and nb.
func (e *Engine) linkCode(nb *neighbour) int {
	c := max(e.book.linkCode(e.cfg.Self), e.book.linkCode(nb.addr))
	if nb.fullLink {
		c = 3
	}
	return c
}

// Enqueue queues one router frame for neighbour peer. It fails with
// transports.ErrTooBig above the MTU, ErrQueueFull when the neighbour's
// queue is full, and transports.ErrClosed for an unknown neighbour.
func (e *Engine) Enqueue(now time.Time, peer bundle.Addr, raw []byte) error {
	if len(raw) > e.cfg.MTU {
		return fmt.Errorf("radio frame of %d bytes: %w (%d)", len(raw), transports.ErrTooBig, e.cfg.MTU)
	}
	nb := e.nbs[peer]
	if nb == nil {
		return fmt.Errorf("radio neighbour %x is gone: %w", peer[:4], transports.ErrClosed)
	}
	if nb.queued >= e.cfg.QueueLimit {
		return fmt.Errorf("%d frames already wait for airtime to %x: %w", nb.queued, peer[:4], ErrQueueFull)
	}
	e.enqueue(nb, raw, nb.fullDest)
	return nil
}

func (e *Engine) enqueue(nb *neighbour, raw []byte, fullDest bool) {
	lc := e.linkCode(nb)
	body, canon, compact := compactBundle(raw, nb.addr, e.book, fullDest)
	class := classInteractive
	if compact {
		if k := bundle.Kind(body[0] >> 6); k == bundle.KindCustodyAck || k == bundle.KindAnnounce {
			class = classControl
		}
		e.rememberSent(nb, body, raw)
		_ = canon
	} else {
		body = raw
	}
	typ := ftRaw
	if compact {
		typ = ftCompact
	}
	nb.queued++
	if 1+2*linkLens[lc]+len(body) <= e.cfg.MaxFrame {
		e.q[class] = append(e.q[class], txItem{nb: nb, frame: encodeSingle(typ, lc, e.cfg.Self, nb.addr, body),
			capped: class == classControl && bundle.Kind(body[0]>>6) == bundle.KindAnnounce})
		return
	}
	chunk := e.cfg.MaxFrame - fragHeaderLen(lc)
	m := &outMsg{nb: nb, body: body, compact: compact}
	for off := 0; off < len(body); off += chunk {
		m.chunks = append(m.chunks, body[off:min(off+chunk, len(body))])
	}
	m.acked = make([]bool, len(m.chunks))
	m.missing = make([]bool, len(m.chunks))
	e.bulk = append(e.bulk, m)
}

func (e *Engine) rememberSent(nb *neighbour, body, raw []byte) {
	const keep = 32
	if len(e.recent) >= keep {
		e.recent = e.recent[1:]
	}
	e.recent = append(e.recent, recentMsg{nb: nb, hash: bodyHash(body), raw: raw})
}

// Poll returns the frame to transmit now (nil for none) and when to call
// Poll again (zero: only after the next Receive or Enqueue). busy is the
// carrier sense (false when the device has none). A returned frame has been
// charged to the budget at now: transmit it at once.
func (e *Engine) Poll(now time.Time, busy bool) (frame []byte, wake time.Time) {
	if !e.started {
		e.started = true
		e.queueHello(now, true)
		e.lonelyHello = min(5*time.Second, e.cfg.HelloInterval)
		e.nextHello = now.Add(e.jitter(e.lonelyHello))
	}
	var w waker
	e.timers(now, &w)
	if now.Before(e.txEnd) {
		w.at(e.txEnd)
		return nil, w.t
	}
	if now.Before(e.backoff) {
		w.at(e.backoff)
		return nil, w.t
	}
	it, class, idx, ok := e.pick(now, &w)
	if !ok {
		return nil, w.t
	}
	toa := e.toa(len(it.frame))
	if e.cfg.Budget != nil {
		at, fits := e.cfg.Budget.ReserveAt(now, toa)
		if !fits {
			e.drop(class, idx, it) // can never go: a configuration error
			e.stats.Oversize++
			w.at(now)
			return nil, w.t
		}
		if at.After(now) {
			w.at(at)
			return nil, w.t
		}
	}
	if busy {
		slot := max(e.toa(16), 5*time.Millisecond)
		e.backoff = now.Add(slot * time.Duration(1+e.cfg.Rand.IntN(8)))
		e.stats.Backoffs++
		w.at(e.backoff)
		return nil, w.t
	}
	if e.cfg.Budget != nil {
		_ = e.cfg.Budget.Commit(now, toa)
	}
	e.take(now, class, idx, it)
	if it.capped {
		e.ctl = append(e.ctl, span{now, toa})
	}
	e.txEnd = now.Add(toa)
	e.stats.FramesOut++
	e.stats.BytesOut += uint64(len(it.frame))
	e.stats.Airtime += toa
	if it.nb != nil {
		it.nb.stats.FramesOut++
		it.nb.stats.BytesOut += uint64(len(it.frame))
		it.nb.stats.Airtime += toa
	}
	w.at(e.txEnd)
	return it.frame, w.t
}

type waker struct{ t time.Time }

func (w *waker) at(t time.Time) {
	if !t.IsZero() && (w.t.IsZero() || t.Before(w.t)) {
		w.t = t
	}
}

func (e *Engine) jitter(d time.Duration) time.Duration {
	return d*3/4 + time.Duration(e.cfg.Rand.Int64N(int64(d/2)+1))
}

// timers runs hello, ack and reassembly timers due at now.
func (e *Engine) timers(now time.Time, w *waker) {
	if !now.Before(e.nextHello) {
		lonely := len(e.nbs) == 0
		e.queueHello(now, lonely)
		// While nobody has been heard (the radio just started, or its
		// neighbours were not listening yet) hello again soon, backing
		// off 5 s, 10 s, 20 s ... up to HelloInterval: the 3 % cap
		// still bounds it.
		iv := e.cfg.HelloInterval
		if lonely {
			e.lonelyHello = min(max(2*e.lonelyHello, 5*time.Second), iv)
			iv = e.lonelyHello
		} else {
			e.lonelyHello = 0
		}
		e.nextHello = now.Add(e.jitter(iv))
	}
	w.at(e.nextHello)
	for i := 0; i < len(e.bulk); i++ {
		m := e.bulk[i]
		if !m.waiting {
			continue
		}
		if now.Before(m.deadln) {
			w.at(m.deadln)
			continue
		}
		// No ack in time: probe with the last unacknowledged fragment.
		m.waiting = false
		m.retries++
		if m.retries > e.cfg.MaxRetries {
			e.finish(i, false)
			i--
			continue
		}
		for j := len(m.acked) - 1; j >= 0; j-- {
			if !m.acked[j] {
				m.pending = []int{j}
				break
			}
		}
		m.nb.stats.Retransmissions++
		e.stats.Retransmissions++
	}
	e.ra.expire(now, w)
}

// finish removes bulk message i, delivered or given up.
func (e *Engine) finish(i int, ok bool) {
	m := e.bulk[i]
	e.bulk = append(e.bulk[:i], e.bulk[i+1:]...)
	m.nb.queued--
	m.nb.inflight = nil
	if !ok {
		m.nb.stats.MessagesFailed++
		e.stats.MessagesFailed++
	}
}

func (e *Engine) queueHello(now time.Time, request bool) {
	if e.helloPending {
		return
	}
	e.helloPending = true
	e.lastHello = now
	e.q[classControl] = append(e.q[classControl], txItem{frame: encodeHello(e.cfg.Self, request), capped: true})
}

// ctlAllowed reports whether a capped control frame of toa fits the 3 %
// cap now, else when it will.
func (e *Engine) ctlAllowed(now time.Time, toa time.Duration) (bool, time.Time) {
	from := now.Add(-e.cfg.ControlWindow)
	k := 0
	for k < len(e.ctl) && !e.ctl[k].start.Add(e.ctl[k].toa).After(from) {
		k++
	}
	e.ctl = e.ctl[k:]
	var used time.Duration
	for _, s := range e.ctl {
		used += s.toa
	}
	limit := time.Duration(e.cfg.ControlShare * float64(e.cfg.ControlWindow))
	if used+toa <= limit {
		return true, time.Time{}
	}
	return false, e.ctl[0].start.Add(e.ctl[0].toa).Add(e.cfg.ControlWindow)
}

// pick chooses the next frame by class; bulk fragments come from the
// message in flight per neighbour.
func (e *Engine) pick(now time.Time, w *waker) (txItem, int, int, bool) {
	for class := classControl; class < classBulk; class++ {
		for i, it := range e.q[class] {
			if it.capped {
				if ok, at := e.ctlAllowed(now, e.toa(len(it.frame))); !ok {
					w.at(at)
					continue
				}
			}
			return it, class, i, true
		}
	}
	for i, m := range e.bulk {
		if m.waiting || (m.nb.inflight != nil && m.nb.inflight != m) {
			continue
		}
		if m.nb.inflight == nil {
			m.nb.inflight = m
			m.seq = m.nb.nextSeq
			m.nb.nextSeq++
			m.pending = make([]int, len(m.chunks))
			for j := range m.pending {
				m.pending[j] = j
			}
		}
		if len(m.pending) == 0 {
			continue
		}
		j := m.pending[0]
		lc := e.linkCode(m.nb)
		var fl byte
		if m.compact {
			fl = flFragCompact
		}
		f := encodeFrag(lc, e.cfg.Self, m.nb.addr, m.compact, m.seq, j, len(m.chunks), m.chunks[j])
		if len(m.pending) == 1 {
			f[0] |= flFragPoll
		}
		_ = fl
		return txItem{nb: m.nb, frame: f, msg: m}, classBulk, i, true
	}
	return txItem{}, 0, 0, false
}

// flFragPoll on a fragment asks the receiver for an ack now.
const flFragPoll = 2

func (e *Engine) drop(class, idx int, it txItem) {
	if class == classBulk {
		e.finish(idx, false)
		return
	}
	e.q[class] = append(e.q[class][:idx], e.q[class][idx+1:]...)
	switch {
	case it.nb != nil:
		it.nb.queued--
	case it.frame[0]>>4 == ftAir:
		e.airQueued--
	default:
		e.helloPending = false
	}
}

func (e *Engine) take(now time.Time, class, idx int, it txItem) {
	if class != classBulk {
		e.q[class] = append(e.q[class][:idx], e.q[class][idx+1:]...)
		if t := it.frame[0] >> 4; t == ftHello {
			e.helloPending = false
		} else if t == ftAir {
			e.airQueued--
			e.stats.Aired++
		} else if t := int(it.frame[0] >> 4); it.nb != nil && (t == ftCompact || t == ftRaw) {
			it.nb.queued--
		}
		return
	}
	m := it.msg
	m.pending = m.pending[1:]
	m.sentAny = true
	if len(m.pending) == 0 {
		m.waiting = true
		// Wait for the receiver's ack: its frame, our frame, slack.
		m.deadln = now.Add(e.toa(len(it.frame)) + 2*e.toa(e.cfg.MaxFrame) + e.toa(40) + 500*time.Millisecond)
	}
}

// queueCtl queues a control frame to a neighbour (acks, naks, bye).
func (e *Engine) queueCtl(nb *neighbour, f []byte) {
	const maxCtl = 256
	if len(e.q[classControl]) >= maxCtl {
		e.stats.ControlDrops++
		return
	}
	e.q[classControl] = append(e.q[classControl], txItem{nb: nb, frame: f})
}

// Events returns and clears what Radio must act on.
func (e *Engine) takeEvents() []event {
	ev := e.events
	e.events = nil
	return ev
}

// Receive handles one frame from the air.
func (e *Engine) Receive(now time.Time, rx RxFrame) {
	e.stats.FramesIn++
	e.stats.BytesIn += uint64(len(rx.Data))
	f, err := decodeFrame(rx.Data)
	if err != nil {
		e.stats.Malformed++
		return
	}
	if f.typ == ftHello {
		var a bundle.Addr
		copy(a[:], f.src)
		if a == e.cfg.Self {
			return
		}
		nb := e.neighbour(a)
		nb.seen(rx)
		if f.flags&flHelloRequest != 0 && now.Sub(e.lastHello) > 2*time.Second {
			e.queueHello(now, false)
		}
		return
	}
	if f.typ != ftAir && !bytes.HasPrefix(e.cfg.Self[:], f.dst) {
		e.stats.Overheard++
		return
	}
	nb := e.resolveNeighbour(f.src)
	if nb == nil {
		e.stats.UnknownSource++
		if now.Sub(e.lastHelloReq) > 5*time.Second {
			e.lastHelloReq = now
			e.queueHello(now, true)
		}
		return
	}
	nb.seen(rx)
	switch f.typ {
	case ftCompact:
		e.deliverCompact(nb, f.body)
	case ftRaw:
		e.deliver(nb, append([]byte(nil), f.body...))
	case ftFrag:
		e.onFrag(now, nb, f)
	case ftFragAck:
		e.onAck(nb, f)
	case ftNak:
		e.onNak(nb, f.hash)
	case ftAir:
		e.deliverAired(nb, f)
	case ftBye:
		e.removeNeighbour(nb)
		e.events = append(e.events, event{kind: evBye, addr: nb.addr})
	}
}

func (e *Engine) deliverCompact(nb *neighbour, body []byte) {
	raw, err := expandBundle(body, e.cfg.Self, e.book)
	if err != nil {
		if errors.Is(err, errExpand) {
			nb.stats.ExpandFailures++
			e.queueCtl(nb, encodeNak(e.linkCode(nb), e.cfg.Self, nb.addr, bodyHash(body)))
			return
		}
		e.stats.Malformed++
		return
	}
	e.deliver(nb, raw)
}

func (e *Engine) deliver(nb *neighbour, data []byte) {
	if b, err := bundle.Unmarshal(data); err == nil {
		e.book.add(b.Dest, false)
	}
	e.events = append(e.events, event{kind: evDeliver, addr: nb.addr, data: data})
}

func (e *Engine) onAck(nb *neighbour, f frame) {
	m := nb.inflight
	if m == nil || m.seq != f.seq || len(m.chunks) != f.count || !m.sentAny {
		e.stats.StrayAcks++
		return
	}
	idx := -1
	for i, x := range e.bulk {
		if x == m {
			idx = i
		}
	}
	if f.bitmap == nil {
		for i, a := range m.acked {
			if !a && m.missing[i] {
				nb.stats.FragmentsRepaired++
				e.stats.FragmentsRepaired++
			}
		}
		e.finish(idx, true)
		nb.stats.MessagesSent++
		return
	}
	if !m.waiting {
		return // a repair round is already under way: one round per ack
	}
	m.waiting = false
	m.retries++
	if m.retries > e.cfg.MaxRetries {
		e.finish(idx, false)
		return
	}
	m.pending = m.pending[:0]
	lost := 0
	for i := range m.chunks {
		got := f.bitmap[i/8]&(1<<(i%8)) != 0
		if got && !m.acked[i] {
			m.acked[i] = true
			if m.missing[i] {
				nb.stats.FragmentsRepaired++
				e.stats.FragmentsRepaired++
			}
		}
		if !m.acked[i] {
			m.missing[i] = true
			lost++
		}
		if !m.acked[i] || e.cfg.resendAll {
			m.pending = append(m.pending, i)
		}
	}
	nb.stats.FragmentsLost += uint64(lost)
	e.stats.FragmentsLost += uint64(lost)
	nb.stats.Retransmissions += uint64(len(m.pending))
	e.stats.Retransmissions += uint64(len(m.pending))
	if len(m.pending) == 0 { // bitmap full but not flagged complete
		e.finish(idx, true)
	}
}

func (e *Engine) onNak(nb *neighbour, h uint32) {
	for i := range e.recent {
		r := &e.recent[i]
		if r.nb == nb && r.hash == h && !r.resent {
			r.resent = true
			nb.fullDest = true
			if nb.queued < e.cfg.QueueLimit {
				e.enqueue(nb, r.raw, true)
			}
			return
		}
	}
	e.stats.StrayAcks++
}

func (e *Engine) neighbour(a bundle.Addr) *neighbour {
	nb := e.nbs[a]
	if nb == nil {
		nb = &neighbour{addr: a}
		e.nbs[a] = nb
		e.order = append(e.order, nb)
		e.book.add(a, true)
		e.events = append(e.events, event{kind: evNeighbour, addr: a})
	}
	return nb
}

func (e *Engine) resolveNeighbour(prefix []byte) *neighbour {
	var found *neighbour
	for _, nb := range e.order {
		if bytes.HasPrefix(nb.addr[:], prefix) {
			if found != nil {
				return nil
			}
			found = nb
		}
	}
	return found
}

// removeNeighbour forgets a neighbour and everything queued to it.
func (e *Engine) removeNeighbour(nb *neighbour) {
	if e.nbs[nb.addr] != nb {
		return
	}
	delete(e.nbs, nb.addr)
	for i, x := range e.order {
		if x == nb {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
	for c := range e.q {
		q := e.q[c][:0]
		for _, it := range e.q[c] {
			if it.nb != nb {
				q = append(q, it)
			}
		}
		e.q[c] = q
	}
	b := e.bulk[:0]
	for _, m := range e.bulk {
		if m.nb != nb {
			b = append(b, m)
		}
	}
	e.bulk = b
	e.ra.dropPeer(nb.addr)
}

// Close says goodbye to neighbour peer (queued as a control frame) and
// forgets it.
func (e *Engine) Close(peer bundle.Addr) {
	nb := e.nbs[peer]
	if nb == nil {
		return
	}
	e.removeNeighbour(nb)
	e.q[classControl] = append(e.q[classControl], txItem{frame: encodeBye(e.linkCode(nb), e.cfg.Self, nb.addr)})
}
