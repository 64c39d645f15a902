// Package kisstest provides test doubles for package kiss: a fake KISS TNC
// reached through kiss.WithDialer (or kiss.WithSerialOpener), a pair of
// fake TNCs joined by an ideal channel, and a fake clock for
// radiolink.Clock. They let tests above the KISS layer run without Dire
// Wolf and without sleeping.
package kisstest

import (
	"context"
	"errors"
	"io"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/ternmesh/tern/transports/kiss"
)

// TNC is a fake KISS TNC. Every KISS frame a device writes to it appears
// on Sent (buffered; frames are dropped when nobody reads it, counted in
// SentDropped); Inject delivers frames to the device; data frames are also
// relayed to joined TNCs, whose devices receive them as if heard on the air
// (bounded queue, dropped when full, like a busy channel).
type TNC struct {
	sent chan kiss.Frame
	in   chan []byte
	stop chan struct{}

	mu          sync.Mutex
	conn        net.Conn // TNC side of the current connection
	peers       []*TNC
	sentDropped int
	closeOnce   sync.Once
}

// New returns a fake TNC; Close it when done.
func New() *TNC {
	t := &TNC{sent: make(chan kiss.Frame, 1024), in: make(chan []byte, 256), stop: make(chan struct{})}
	go t.writeLoop()
	return t
}

// Join connects a and b with an ideal channel: data frames sent through
// either are received by the other.
func Join(a, b *TNC) {
	a.mu.Lock()
	a.peers = append(a.peers, b)
	a.mu.Unlock()
	b.mu.Lock()
	b.peers = append(b.peers, a)
	b.mu.Unlock()
}

// Dial has the signature of kiss.Dialer: each call replaces the current
// connection with a fresh one.
func (t *TNC) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	select {
	case <-t.stop:
		return nil, errors.New("kisstest: TNC closed")
	default:
	}
	dev, tnc := net.Pipe()
	t.mu.Lock()
	if t.conn != nil {
		t.conn.Close()
	}
	t.conn = tnc
	t.mu.Unlock()
	go t.readLoop(tnc)
	return dev, nil
}

// OpenSerial has the signature of kiss.SerialOpener.
func (t *TNC) OpenSerial(path string, baud int) (io.ReadWriteCloser, error) {
	return t.Dial(context.Background(), "serial", path)
}

// Sent yields the KISS frames devices wrote to this TNC, in order.
func (t *TNC) Sent() <-chan kiss.Frame { return t.sent }

// SentDropped counts frames not queued on Sent because it was full.
func (t *TNC) SentDropped() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sentDropped
}

// Inject delivers f to the connected device.
func (t *TNC) Inject(f kiss.Frame) error {
	b, err := kiss.Encode(f)
	if err != nil {
		return err
	}
	return t.InjectRaw(b)
}

// InjectAX25 delivers an AX.25 frame as a KISS data frame on port 0.
func (t *TNC) InjectAX25(f kiss.AX25Frame) error {
	b, err := f.Encode()
	if err != nil {
		return err
	}
	return t.Inject(kiss.Frame{Command: kiss.CmdData, Data: b})
}

// InjectRaw writes raw bytes (escaped or not, garbage allowed) to the
// connected device. It blocks until the device has read them.
func (t *TNC) InjectRaw(b []byte) error {
	t.mu.Lock()
	c := t.conn
	t.mu.Unlock()
	if c == nil {
		return errors.New("kisstest: no device connected")
	}
	_, err := c.Write(b)
	return err
}

// Drop closes the current connection, as when a TNC is unplugged or Dire
// Wolf exits.
func (t *TNC) Drop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}

// Close drops the connection and stops the TNC.
func (t *TNC) Close() {
	t.closeOnce.Do(func() { close(t.stop) })
	t.Drop()
}

func (t *TNC) readLoop(c net.Conn) {
	dec := kiss.NewDecoder(c, 0)
	for {
		f, err := dec.ReadFrame()
		if errors.Is(err, kiss.ErrBadEscape) || errors.Is(err, kiss.ErrFrameTooLong) {
			continue
		}
		if err != nil {
			return
		}
		select {
		case t.sent <- f:
		default:
			t.mu.Lock()
			t.sentDropped++
			t.mu.Unlock()
		}
		if f.Command != kiss.CmdData {
			continue
		}
		b, err := kiss.Encode(f)
		if err != nil {
			continue
		}
		t.mu.Lock()
		peers := append([]*TNC(nil), t.peers...)
		t.mu.Unlock()
		for _, p := range peers {
			select {
			case p.in <- b:
			default: // channel busy: the frame is lost
			}
		}
	}
}

func (t *TNC) writeLoop() {
	for {
		select {
		case <-t.stop:
			return
		case b := <-t.in:
			_ = t.InjectRaw(b)
		}
	}
}

// Clock is a fake radiolink.Clock: time moves only in Advance, which runs
// due callbacks in time order on the caller's goroutine.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers map[int]*timer
}

type timer struct {
	at  time.Time
	seq int
	f   func()
}

// NewClock returns a fake clock reading start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, timers: map[int]*timer{}}
}

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at Now()+d.
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	id := c.seq
	c.timers[id] = &timer{at: c.now.Add(d), seq: id, f: f}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.timers[id]
		delete(c.timers, id)
		return ok
	}
}

// Pending returns the number of scheduled callbacks.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Advance moves time forward by d, running every callback that falls due,
// in order, each with the clock reading its due time.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due []*timer
		for _, t := range c.timers {
			if !t.at.After(end) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			c.now = end
			c.mu.Unlock()
			return
		}
		sort.Slice(due, func(i, j int) bool {
			if due[i].at.Equal(due[j].at) {
				return due[i].seq < due[j].seq
			}
			return due[i].at.Before(due[j].at)
		})
		t := due[0]
		delete(c.timers, t.seq)
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
	}
}
