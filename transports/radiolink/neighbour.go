package radiolink

import (
	"bytes"
	"math"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// Counters are traffic counters of one neighbour or of a whole radio.
type Counters struct {
	FramesIn, FramesOut uint64
	BytesIn, BytesOut   uint64
	// Airtime this side spent transmitting (whole run).
	Airtime time.Duration
	// Retransmissions counts fragments sent again (repairs and probes).
	Retransmissions uint64
	// FragmentsLost counts fragments a receiver reported missing;
	// FragmentsRepaired those of them later delivered.
	FragmentsLost, FragmentsRepaired uint64
	// MessagesSent counts fragmented messages fully acknowledged;
	// MessagesFailed those given up after MaxRetries.
	MessagesSent, MessagesFailed uint64
	// ReassemblyDrops counts incomplete messages dropped (timeout or
	// memory cap, oldest first).
	ReassemblyDrops uint64
	// ExpandFailures counts compact frames whose short destination this
	// side could not expand (answered with a NAK).
	ExpandFailures uint64
	// Radio-wide only:
	Malformed, Overheard, UnknownSource, StrayAcks, ControlDrops uint64
	Backoffs, Oversize                                           uint64
	// Aired counts aired-bundle broadcasts sent; AiredIn those received
	// and handed to the router (radio-wide only).
	Aired, AiredIn uint64
}

// neighbour is the engine's state for one node heard on the channel.
type neighbour struct {
	addr     bundle.Addr
	queued   int     // router frames waiting (single or fragmented)
	inflight *outMsg // fragmented message being sent
	nextSeq  uint16
	fullDest bool // it NAKed a short destination: always send 16 bytes
	fullLink bool
	stats    Counters
	rssi     float64
	snr      float64
	heard    bool
}

func (nb *neighbour) seen(rx RxFrame) {
	nb.stats.FramesIn++
	nb.stats.BytesIn += uint64(len(rx.Data))
	nb.rssi, nb.snr, nb.heard = rx.RSSI, rx.SNR, true
}

// book is the table of addresses known on one radio: own, neighbours
// (never forgotten while known) and destinations of bundles seen (the most
// recent maxBook).
type book struct {
	self  bundle.Addr
	addrs []bundle.Addr
	nbs   map[bundle.Addr]bool
}

const maxBook = 1024

func newBook(self bundle.Addr) *book {
	return &book{self: self, addrs: []bundle.Addr{self}, nbs: map[bundle.Addr]bool{self: true}}
}

func (b *book) add(a bundle.Addr, neighbour bool) {
	if neighbour {
		b.nbs[a] = true
	}
	for i, x := range b.addrs {
		if x == a {
			copy(b.addrs[1:i+1], b.addrs[:i]) // most recent first
			b.addrs[0] = a
			return
		}
	}
	if len(b.addrs) >= maxBook {
		for i := len(b.addrs) - 1; i >= 0; i-- {
			if !b.nbs[b.addrs[i]] {
				b.addrs = append(b.addrs[:i], b.addrs[i+1:]...)
				break
			}
		}
	}
	b.addrs = append([]bundle.Addr{a}, b.addrs...)
}

func (b *book) resolve(prefix []byte) (bundle.Addr, bool) {
	var found bundle.Addr
	n := 0
	for _, a := range b.addrs {
		if bytes.HasPrefix(a[:], prefix) {
			found = a
			n++
		}
	}
	return found, n == 1
}

func (b *book) known(a bundle.Addr) bool {
	for _, x := range b.addrs {
		if x == a {
			return true
		}
	}
	return false
}

// unambiguous reports whether the first n bytes of a match no other known address.
func (b *book) unambiguous(a bundle.Addr, n int) bool {
	for _, x := range b.addrs {
		if x != a && bytes.Equal(x[:n], a[:n]) {
			return false
		}
	}
	return true
}

// shortest is the destination code (1: 2 bytes, 2: 4 bytes, 3: 16).
func (b *book) shortest(a bundle.Addr) int {
	if !b.known(a) {
		return 3
	}
	for c, n := range []int{0, 2, 4} {
		if c > 0 && b.unambiguous(a, n) {
			return c
		}
	}
	return 3
}

// linkCode is the link address code (0: 2 bytes ... 3: 16) for a.
func (b *book) linkCode(a bundle.Addr) int {
	for c, n := range linkLens[:3] {
		if b.unambiguous(a, n) {
			return c
		}
	}
	return 3
}

// reassembly is one incoming fragmented message.
type reassembly struct {
	peer    bundle.Addr
	seq     uint16
	count   int
	compact bool
	frags   [][]byte
	have    int
	bytes   int
	started time.Time
	last    time.Time
	lastAck time.Time
}

// doneKey remembers recently completed messages, to re-ack them.
type doneKey struct {
	peer  bundle.Addr
	seq   uint16
	count int
}

// reassembler holds incoming messages within the memory caps.
type reassembler struct {
	cfg    *Config
	onDrop func(bundle.Addr)
	msgs   []*reassembly // oldest first
	total  int
	done   []doneKey
}

func (r *reassembler) init(cfg *Config) { r.cfg = cfg }

// cost is what a message is charged: its fragments plus bookkeeping.
const msgCost = 128

func (r *reassembler) peerBytes(p bundle.Addr) int {
	n := 0
	for _, m := range r.msgs {
		if m.peer == p {
			n += m.bytes
		}
	}
	return n
}

func (r *reassembler) remove(i int) {
	r.total -= r.msgs[i].bytes
	r.msgs = append(r.msgs[:i], r.msgs[i+1:]...)
}

func (r *reassembler) dropPeer(p bundle.Addr) {
	for i := len(r.msgs) - 1; i >= 0; i-- {
		if r.msgs[i].peer == p {
			r.remove(i)
		}
	}
}

func (r *reassembler) expire(now time.Time, w *waker) {
	for i := 0; i < len(r.msgs); i++ {
		m := r.msgs[i]
		if dl := m.last.Add(r.cfg.ReassemblyTimeout); !now.Before(dl) {
			r.remove(i)
			i--
			r.onDrop(m.peer)
		} else {
			w.at(dl)
		}
	}
}

// Bytes returns the reassembly memory in use (for tests and stats).
func (r *reassembler) Bytes() int { return r.total }

func (e *Engine) onFrag(now time.Time, nb *neighbour, f frame) {
	// The largest count a message within the MTU can need.
	chunkMin := e.cfg.MaxFrame - fragHeaderLen(3)
	if f.count > e.cfg.MTU/chunkMin+2 || len(f.body) == 0 || len(f.body) > e.cfg.MaxFrame {
		e.stats.Malformed++
		return
	}
	ra := &e.ra
	for _, d := range ra.done {
		if d.peer == nb.addr && d.seq == f.seq && d.count == f.count {
			if f.flags&flFragPoll != 0 {
				e.queueCtl(nb, encodeFragAck(e.linkCode(nb), e.cfg.Self, nb.addr, f.seq, f.count, nil))
			}
			return
		}
	}
	var m *reassembly
	for _, x := range ra.msgs {
		if x.peer == nb.addr && x.seq == f.seq {
			m = x
		}
	}
	if m != nil && m.count != f.count {
		e.stats.Malformed++
		return
	}
	if m == nil {
		m = &reassembly{peer: nb.addr, seq: f.seq, count: f.count, compact: f.flags&flFragCompact != 0,
			frags: make([][]byte, f.count), started: now, bytes: msgCost + f.count*24}
		ra.msgs = append(ra.msgs, m)
		ra.total += m.bytes
	}
	m.last = now
	if m.frags[f.index] == nil {
		m.frags[f.index] = append([]byte(nil), f.body...)
		m.have++
		m.bytes += len(f.body)
		ra.total += len(f.body)
	}
	// Enforce the caps, oldest first (never the message just touched
	// unless it alone is too big).
	for ra.peerBytes(nb.addr) > e.cfg.ReassemblyPerPeer || ra.total > e.cfg.ReassemblyTotal {
		idx := -1
		for i, x := range ra.msgs {
			if x != m && (ra.total > e.cfg.ReassemblyTotal || x.peer == nb.addr) {
				idx = i
				break
			}
		}
		if idx < 0 {
			idx = len(ra.msgs) - 1 // m itself
		}
		victim := ra.msgs[idx]
		ra.remove(idx)
		e.countDrop(victim.peer)
		if victim == m {
			return
		}
	}
	if m.have == m.count {
		for i, x := range ra.msgs {
			if x == m {
				ra.remove(i)
				break
			}
		}
		ra.done = append(ra.done, doneKey{nb.addr, f.seq, f.count})
		if len(ra.done) > 64 {
			ra.done = ra.done[1:]
		}
		e.queueCtl(nb, encodeFragAck(e.linkCode(nb), e.cfg.Self, nb.addr, f.seq, f.count, nil))
		body := bytes.Join(m.frags, nil)
		if m.compact {
			e.deliverCompact(nb, body)
		} else {
			e.deliver(nb, body)
		}
		return
	}
	if f.flags&flFragPoll != 0 && now.Sub(m.lastAck) >= e.toa(e.cfg.MaxFrame) {
		m.lastAck = now
		bm := make([]byte, (m.count+7)/8)
		for i, fr := range m.frags {
			if fr != nil {
				bm[i/8] |= 1 << (i % 8)
			}
		}
		e.queueCtl(nb, encodeFragAck(e.linkCode(nb), e.cfg.Self, nb.addr, f.seq, f.count, bm))
	}
}

func (e *Engine) countDrop(p bundle.Addr) {
	e.stats.ReassemblyDrops++
	if nb := e.nbs[p]; nb != nil {
		nb.stats.ReassemblyDrops++
	}
}

// ReassemblyBytes returns the memory charged to incomplete messages.
func (e *Engine) ReassemblyBytes() int { return e.ra.total }

// QueuedFrames returns the frames waiting in all queues.
func (e *Engine) QueuedFrames() int {
	n := len(e.bulk)
	for _, q := range e.q {
		n += len(q)
	}
	return n
}

var nan = math.NaN()
