package call

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ternmesh/tern/bundle"
)

// streamQueue bounds the frames waiting for the page: 64 frames, 1.3 s.
const streamQueue = 64

// ErrEnded is returned by Stream.Send once the call is over.
var ErrEnded = errors.New("the call has ended")

// Stream is the media endpoint of the call in progress: the browser's
// socket. Frames the peer sends come out of Frames; Send seals and sends
// the browser's. One stream per call: attaching a new one stops the old.
type Stream struct {
	a    *App
	c    *live
	out  chan Frame
	done chan struct{}
	once sync.Once
}

// Attach opens the media endpoint of call id (ringing or active).
func (a *App) Attach(id ID) (*Stream, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := a.current(id)
	if err != nil {
		return nil, err
	}
	s := &Stream{a: a, c: c, out: make(chan Frame, streamQueue), done: make(chan struct{})}
	c.mu.Lock()
	if c.stream != nil {
		c.stream.stop()
	}
	c.stream = s
	c.mu.Unlock()
	return s, nil
}

// Frames are the peer's frames, decrypted, in arrival order (the page's
// jitter buffer puts them in order).
func (s *Stream) Frames() <-chan Frame { return s.out }

// Done is closed when the call ends or another stream replaces this one.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Call is the call's ID.
func (s *Stream) Call() ID { return s.c.id }

func (s *Stream) stop() { s.once.Do(func() { close(s.done) }) }

// offer queues f for the page without blocking; c.mu is held.
func (s *Stream) offer(f Frame) bool {
	select {
	case s.out <- f:
		return true
	default:
		return false
	}
}

// Close detaches the stream; the call goes on (Hangup ends it).
func (s *Stream) Close() {
	s.c.mu.Lock()
	if s.c.stream == s {
		s.c.stream = nil
	}
	s.c.mu.Unlock()
	s.stop()
}

// Send seals one Opus frame captured at timestamp (48 kHz ticks) and sends
// it to the peer at once. While the call rings the frame is dropped (nil
// error): audio flows once both sides hold both keys. A frame the router
// cannot send is counted in Stats, not returned: the next one may go.
func (s *Stream) Send(timestamp uint32, opus []byte) error {
	if len(opus) > MaxOpus {
		return fmt.Errorf("an Opus frame of %d bytes is over the %d-byte maximum a datagram carries", len(opus), MaxOpus)
	}
	c := s.c
	now := s.a.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return ErrEnded
	}
	if c.tx == nil {
		return nil
	}
	echo, delay := c.rxs.echo(now)
	p, _, err := c.tx.seal(frameTimes{media: timestamp, sent: c.clock(now), echo: echo, delay: delay}, opus)
	if err != nil {
		return err
	}
	// SendVoice never blocks, so holding c.mu keeps frames in sequence order.
	if err := s.a.cfg.Voice.SendVoice(bundle.Addr(c.peer), p); err != nil {
		c.sendFailures++
		c.sendErr = err
		return nil
	}
	c.sent++
	c.sendErr = nil
	return nil
}

// Stats are the call's live figures.
func (s *Stream) Stats() Stats { return s.a.statsOf(s.c) }

func (a *App) statsOf(c *live) Stats {
	c.mu.Lock()
	var w window
	if c.rx != nil {
		w = c.rx.win
	}
	st := c.rxs.stats(&w)
	st.FramesSent, st.SendFailures = c.sent, c.sendFailures
	err := c.sendErr
	c.mu.Unlock()
	if err != nil {
		st.SendProblem = a.Explain(err, c.peer)
	}
	return st
}

// Stats returns the figures of call id while it is in progress.
func (a *App) Stats(id ID) (Stats, error) {
	a.mu.Lock()
	c, err := a.current(id)
	a.mu.Unlock()
	if err != nil {
		return Stats{}, err
	}
	return a.statsOf(c), nil
}
