package transports

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMemMTU is the MTU of an in-memory link when MemOptions.MTU is 0.
const DefaultMemMTU = 64 << 10

// memQueue is how many frames may wait in one direction of an in-memory link
// before Send blocks (flow control).
const memQueue = 1024

// MemOptions shape an in-memory link pair. The zero value is a perfect,
// instant, reliable link with a 64 KiB MTU.
type MemOptions struct {
	// Latency is the one-way delay added to every frame (real time).
	Latency time.Duration
	// Bandwidth in bytes per second; 0 means unlimited. Frames queue behind
	// each other as on a serial line: a frame of n bytes occupies the line
	// for n/Bandwidth seconds.
	Bandwidth int64
	// Loss is the probability in [0,1] that a frame is silently dropped.
	Loss float64
	// Seed seeds the loss decisions, so a lossy test is reproducible.
	Seed uint64
	// MTU is the largest frame; 0 means DefaultMemMTU.
	MTU int
	// Authenticated is reported in Peer().Authenticated on both ends.
	Authenticated bool
	// AddrA and AddrB are the node addresses of the two ends: a.Peer().Addr
	// is AddrB and b.Peer().Addr is AddrA.
	AddrA, AddrB [16]byte
	// RemoteA and RemoteB are the medium names reported in Peer().Remote
	// (defaults "mem:a" and "mem:b").
	RemoteA, RemoteB string
}

// MemLink is one end of an in-memory link made by NewMemPair or MemNetwork.
// Besides Link it implements StatsLink, and SetDown simulates an outage.
type MemLink struct {
	pair   *memPair
	in     chan []byte // frames for this end
	out    *memDir     // direction this end sends on
	peer   Peer
	closed chan struct{} // closed by this end's Close
	once   sync.Once

	framesIn, framesOut, bytesIn, bytesOut atomic.Uint64
}

// memPair is the state shared by both ends.
type memPair struct {
	opts MemOptions
	mtu  int
	down atomic.Bool
	dead chan struct{} // closed when either end closes
	once sync.Once

	mu  sync.Mutex // guards rnd
	rnd *rand.Rand
}

// memDir is one direction: a sender queue drained by a delivery goroutine
// when latency or bandwidth are simulated, or the receiver's inbox directly.
type memDir struct {
	queue    chan memItem // nil when delivery is immediate
	inbox    chan []byte
	busyTill time.Time // guarded by the sender's mutex below
	mu       sync.Mutex
}

type memItem struct {
	frame []byte
	at    time.Time
}

// NewMemPair returns the two ends of an in-memory link. Closing either end
// closes both. Use a.(*MemLink).SetDown to simulate an outage.
func NewMemPair(opts MemOptions) (a, b Link) {
	la, lb := newMemPair(opts)
	return la, lb
}

func newMemPair(opts MemOptions) (*MemLink, *MemLink) {
	mtu := opts.MTU
	if mtu <= 0 {
		mtu = DefaultMemMTU
	}
	p := &memPair{
		opts: opts,
		mtu:  mtu,
		dead: make(chan struct{}),
		rnd:  rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
	}
	ra, rb := opts.RemoteA, opts.RemoteB
	if ra == "" {
		ra = "mem:a"
	}
	if rb == "" {
		rb = "mem:b"
	}
	inA, inB := make(chan []byte, memQueue), make(chan []byte, memQueue)
	ab, ba := p.newDir(inB), p.newDir(inA)
	a := &MemLink{pair: p, in: inA, out: ab, closed: make(chan struct{}),
		peer: Peer{Addr: opts.AddrB, Authenticated: opts.Authenticated, Remote: rb}}
	b := &MemLink{pair: p, in: inB, out: ba, closed: make(chan struct{}),
		peer: Peer{Addr: opts.AddrA, Authenticated: opts.Authenticated, Remote: ra}}
	return a, b
}

func (p *memPair) newDir(inbox chan []byte) *memDir {
	d := &memDir{inbox: inbox}
	if p.opts.Latency > 0 || p.opts.Bandwidth > 0 {
		d.queue = make(chan memItem, memQueue)
		go p.deliver(d)
	}
	return d
}

// deliver moves frames from d.queue to d.inbox when their time comes. It
// keeps the order of the queue and stops when the pair dies.
func (p *memPair) deliver(d *memDir) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var it memItem
		select {
		case it = <-d.queue:
		case <-p.dead:
			return
		}
		if wait := time.Until(it.at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-p.dead:
				return
			}
		}
		if p.down.Load() {
			continue // lost in the outage while in flight
		}
		select {
		case d.inbox <- it.frame:
		case <-p.dead:
			return
		}
	}
}

// SetDown switches an outage on or off for both directions of the pair.
// While down, Send still succeeds but every frame (including frames in
// flight) is lost, like a radio out of range.
func (l *MemLink) SetDown(down bool) { l.pair.down.Store(down) }

// Send implements Link.
func (l *MemLink) Send(ctx context.Context, frame []byte) error {
	if len(frame) > l.pair.mtu {
		return fmt.Errorf("mem link send of %d bytes: %w (MTU %d)", len(frame), ErrTooBig, l.pair.mtu)
	}
	if err := l.closedErr(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.framesOut.Add(1)
	l.bytesOut.Add(uint64(len(frame)))
	if l.pair.down.Load() || l.pair.lose() {
		return nil
	}
	cp := append([]byte(nil), frame...)
	if l.out.queue == nil {
		select {
		case l.out.inbox <- cp:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-l.closed:
			return l.closedErr()
		case <-l.pair.dead:
			return l.closedErr()
		}
	}
	l.out.mu.Lock()
	now := time.Now()
	start := now
	if l.out.busyTill.After(start) {
		start = l.out.busyTill
	}
	if bw := l.pair.opts.Bandwidth; bw > 0 {
		start = start.Add(time.Duration(int64(len(frame)) * int64(time.Second) / bw))
	}
	l.out.busyTill = start
	item := memItem{frame: cp, at: start.Add(l.pair.opts.Latency)}
	// Enqueue under the lock so the queue order matches the time order.
	defer l.out.mu.Unlock()
	select {
	case l.out.queue <- item:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.closed:
		return l.closedErr()
	case <-l.pair.dead:
		return l.closedErr()
	}
}

func (p *memPair) lose() bool {
	if p.opts.Loss <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rnd.Float64() < p.opts.Loss
}

// Recv implements Link. After the peer closes, frames already delivered are
// still returned before ErrClosed; after a local Close, ErrClosed at once.
func (l *MemLink) Recv(ctx context.Context) ([]byte, error) {
	select {
	case <-l.closed:
		return nil, l.closedErr()
	default:
	}
	select {
	case f := <-l.in:
		l.count(f)
		return f, nil
	default:
	}
	select {
	case f := <-l.in:
		l.count(f)
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.closed:
		return nil, l.closedErr()
	case <-l.pair.dead:
		select {
		case f := <-l.in:
			l.count(f)
			return f, nil
		default:
			return nil, l.closedErr()
		}
	}
}

func (l *MemLink) count(f []byte) {
	l.framesIn.Add(1)
	l.bytesIn.Add(uint64(len(f)))
}

func (l *MemLink) closedErr() error {
	select {
	case <-l.closed:
		return fmt.Errorf("mem link to %s: %w locally", l.peer.Remote, ErrClosed)
	case <-l.pair.dead:
		return fmt.Errorf("mem link to %s: %w by the peer", l.peer.Remote, ErrClosed)
	default:
		return nil
	}
}

// MTU implements Link.
func (l *MemLink) MTU() int { return l.pair.mtu }

// Peer implements Link.
func (l *MemLink) Peer() Peer { return l.peer }

// Close implements Link; it closes both ends and is idempotent.
func (l *MemLink) Close() error {
	l.once.Do(func() { close(l.closed) })
	l.pair.once.Do(func() { close(l.pair.dead) })
	return nil
}

// Stats implements StatsLink. RTTMillis is twice the configured latency.
func (l *MemLink) Stats() Stats {
	return Stats{
		FramesIn: l.framesIn.Load(), FramesOut: l.framesOut.Load(),
		BytesIn: l.bytesIn.Load(), BytesOut: l.bytesOut.Load(),
		// Known exactly: twice the configured latency, plus a microsecond
		// so an instant link reports a known RTT (0 would mean unknown).
		RTTMillis: 2*float64(l.pair.opts.Latency)/float64(time.Millisecond) + 0.001,
	}
}

// BitRate implements RateLink: the configured bandwidth in bits per
// second, 0 (unknown, fast) when unlimited.
func (l *MemLink) BitRate() float64 { return float64(l.pair.opts.Bandwidth) * 8 }

var (
	_ Link      = (*MemLink)(nil)
	_ StatsLink = (*MemLink)(nil)
	_ RateLink  = (*MemLink)(nil)
)
