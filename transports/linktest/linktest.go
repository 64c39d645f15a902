// Package linktest is the conformance suite every transports.Link passes.
//
// A link package calls Run from a test with a Harness that makes fresh,
// connected pairs and says what the medium promises:
//
//	func TestConformance(t *testing.T) {
//		linktest.Run(t, linktest.Harness{NewPair: newPair, Reliable: true, Ordered: true, MTU: 1 << 16})
//	}
//
// Every subtest uses its own pair. Waits are bounded by Timeout (never by
// sleeping): a frame that does not arrive in time fails the test on reliable
// links and counts as lost on the others.
package linktest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/transports"
)

// Harness describes a link implementation to the suite.
type Harness struct {
	// NewPair returns two connected ends of a fresh link. The suite closes
	// them; NewPair may register further cleanups with t.Cleanup.
	NewPair func(t *testing.T) (a, b transports.Link)
	// Reliable: every frame sent on an open link arrives.
	Reliable bool
	// Ordered: frames of the same size arrive in the order sent.
	Ordered bool
	// MTU the links must report; 0 means take a.MTU() as given.
	MTU int
	// Timeout bounds every wait for a frame; 0 means 5 s.
	Timeout time.Duration
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, h Harness) {
	if h.NewPair == nil {
		t.Fatal("linktest: Harness.NewPair is nil")
	}
	if h.Timeout == 0 {
		h.Timeout = 5 * time.Second
	}
	s := &suite{h: h}
	t.Run("BothWays", s.bothWays)
	t.Run("ManyInOrder", s.manyInOrder)
	t.Run("MTUEdges", s.mtuEdges)
	t.Run("EmptyFrame", s.emptyFrame)
	t.Run("ConcurrentSend", s.concurrentSend)
	t.Run("RecvHonoursContext", s.recvContext)
	t.Run("Close", s.close)
	t.Run("PeerStable", s.peerStable)
	t.Run("Datagram", s.datagram)
	t.Run("Stats", s.stats)
}

type suite struct{ h Harness }

func (s *suite) pair(t *testing.T) (a, b transports.Link) {
	t.Helper()
	a, b = s.h.NewPair(t)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

// loopCtx bounds one Recv in a loop that drains many frames: on links that
// lose frames the loop ends at the first quiet gap, so keep it short.
func (s *suite) loopCtx(t *testing.T) context.Context {
	if s.h.Reliable {
		return s.ctx(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout/10)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// pattern returns n bytes that differ from any other (seed, n) pattern.
func pattern(seed uint32, n int) []byte {
	b := make([]byte, n)
	x := seed*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(b, seed)
	}
	return b
}

// exchange sends f from src and expects it intact at dst. On unreliable
// links it resends up to 20 times.
func (s *suite) exchange(t *testing.T, src, dst transports.Link, f []byte) {
	t.Helper()
	tries := 1
	if !s.h.Reliable {
		tries = 20
	}
	for i := 0; i < tries; i++ {
		if err := src.Send(s.ctx(t), f); err != nil {
			t.Fatalf("Send(%d bytes): %v", len(f), err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout/time.Duration(tries))
		got, err := dst.Recv(ctx)
		cancel()
		if err != nil {
			if !s.h.Reliable && errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			t.Fatalf("Recv after Send(%d bytes): %v", len(f), err)
		}
		if !bytes.Equal(got, f) {
			t.Fatalf("frame of %d bytes arrived as %d bytes with different content", len(f), len(got))
		}
		return
	}
	t.Fatalf("frame of %d bytes never arrived in %d tries", len(f), tries)
}

func (s *suite) bothWays(t *testing.T) {
	a, b := s.pair(t)
	for i, n := range []int{1, 3, 100, 1000, 5000} {
		n = min(n, a.MTU())
		s.exchange(t, a, b, pattern(uint32(i), n))
		s.exchange(t, b, a, pattern(uint32(100+i), n))
	}
}

func (s *suite) manyInOrder(t *testing.T) {
	a, b := s.pair(t)
	const n = 500
	size := min(200, a.MTU())
	errc := make(chan error, 1)
	sendCtx := s.ctx(t)
	go func() {
		for i := 0; i < n; i++ {
			if err := a.Send(sendCtx, pattern(uint32(i), size)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	next := 0
	got := 0
	for got < n {
		f, err := b.Recv(s.loopCtx(t))
		if err != nil {
			if !s.h.Reliable && errors.Is(err, context.DeadlineExceeded) {
				break
			}
			t.Fatalf("Recv frame %d of %d: %v", got, n, err)
		}
		if len(f) < 4 {
			t.Fatalf("frame %d: %d bytes, sent %d", got, len(f), size)
		}
		seq := int(binary.BigEndian.Uint32(f))
		if !bytes.Equal(f, pattern(uint32(seq), size)) {
			t.Fatalf("frame %d corrupted", seq)
		}
		if s.h.Ordered && seq < next {
			t.Fatalf("frame %d arrived after frame %d on an ordered link", seq, next-1)
		}
		if s.h.Reliable && s.h.Ordered && seq != next {
			t.Fatalf("got frame %d, want %d (lost or reordered on a reliable ordered link)", seq, next)
		}
		next = seq + 1
		got++
	}
	if err := <-errc; err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got == 0 {
		t.Fatal("none of the frames arrived")
	}
}

func (s *suite) mtuEdges(t *testing.T) {
	a, b := s.pair(t)
	mtu := a.MTU()
	if s.h.MTU != 0 && mtu != s.h.MTU {
		t.Fatalf("MTU() = %d, want %d", mtu, s.h.MTU)
	}
	if b.MTU() != mtu {
		t.Fatalf("the two ends disagree on MTU: %d and %d", mtu, b.MTU())
	}
	s.exchange(t, a, b, pattern(7, mtu))
	err := a.Send(s.ctx(t), make([]byte, mtu+1))
	if !errors.Is(err, transports.ErrTooBig) {
		t.Fatalf("Send(MTU+1 = %d bytes) = %v, want ErrTooBig", mtu+1, err)
	}
	s.exchange(t, a, b, pattern(8, 10))
	s.exchange(t, b, a, pattern(9, 10))
}

func (s *suite) emptyFrame(t *testing.T) {
	a, b := s.pair(t)
	s.exchange(t, a, b, []byte{})
	s.exchange(t, a, b, pattern(1, 5)) // the empty frame did not merge with the next
}

func (s *suite) concurrentSend(t *testing.T) {
	a, b := s.pair(t)
	const senders, each = 8, 50
	size := min(1500, a.MTU())
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	sendCtx := s.ctx(t)
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := a.Send(sendCtx, pattern(uint32(g<<16|i), size)); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	lastSeq := make(map[int]int)
	got := 0
	for got < senders*each {
		f, err := b.Recv(s.loopCtx(t))
		if err != nil {
			if !s.h.Reliable && errors.Is(err, context.DeadlineExceeded) {
				break
			}
			t.Fatalf("Recv after %d of %d frames: %v", got, senders*each, err)
		}
		if len(f) != size {
			t.Fatalf("frame of %d bytes, sent %d: frames were split or merged", len(f), size)
		}
		id := binary.BigEndian.Uint32(f)
		if !bytes.Equal(f, pattern(id, size)) {
			t.Fatalf("frame %#x corrupted: concurrent Sends interleaved", id)
		}
		g, i := int(id>>16), int(id&0xffff)
		if last, ok := lastSeq[g]; ok && s.h.Ordered && i <= last {
			t.Fatalf("sender %d: frame %d after frame %d", g, i, last)
		}
		lastSeq[g] = i
		got++
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("concurrent Send: %v", err)
	}
	if got == 0 {
		t.Fatal("none of the concurrent frames arrived")
	}
}

func (s *suite) recvContext(t *testing.T) {
	a, b := s.pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Recv(ctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv with a cancelled ctx = %v, want context.Canceled", err)
		}
	case <-time.After(s.h.Timeout):
		t.Fatal("Recv ignored ctx cancellation")
	}
	// An already expired context fails too, and the link stays usable.
	dead, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := b.Recv(dead); !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv with a dead ctx = %v, want context.Canceled", err)
	}
	s.exchange(t, a, b, pattern(3, 20))
}

func (s *suite) close(t *testing.T) {
	a, b := s.pair(t)
	s.exchange(t, a, b, pattern(1, 10)) // both ends are up
	errs := make(chan error, 2)
	recvCtx := s.ctx(t)
	for _, l := range []transports.Link{a, b} {
		go func() {
			_, err := l.Recv(recvCtx)
			errs <- err
		}()
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, transports.ErrClosed) {
			t.Fatalf("pending Recv after Close = %v, want ErrClosed", err)
		}
	}
	if err := a.Send(s.ctx(t), []byte("x")); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	if err := b.Send(s.ctx(t), []byte("x")); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("Send after the peer closed = %v, want ErrClosed", err)
	}
	if _, err := a.Recv(s.ctx(t)); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("Recv after Close = %v, want ErrClosed", err)
	}
	for _, l := range []transports.Link{a, a, b, b} {
		if err := l.Close(); err != nil {
			t.Fatalf("second Close = %v, want nil (idempotent)", err)
		}
	}
}

func (s *suite) peerStable(t *testing.T) {
	a, b := s.pair(t)
	pa, pb := a.Peer(), b.Peer()
	s.exchange(t, a, b, pattern(1, 10))
	s.exchange(t, b, a, pattern(2, 10))
	if a.Peer() != pa || b.Peer() != pb {
		t.Fatalf("Peer() changed with traffic: %+v -> %+v, %+v -> %+v", pa, a.Peer(), pb, b.Peer())
	}
	_ = a.Close()
	if a.Peer() != pa {
		t.Fatalf("Peer() changed after Close: %+v -> %+v", pa, a.Peer())
	}
}

func (s *suite) datagram(t *testing.T) {
	a, b := s.pair(t)
	da, ok1 := a.(transports.DatagramLink)
	db, ok2 := b.(transports.DatagramLink)
	if !ok1 || !ok2 {
		t.Skip("link has no datagram capability")
	}
	max := da.MaxDatagramSize()
	if max <= 0 {
		t.Fatalf("MaxDatagramSize() = %d", max)
	}
	want := pattern(42, max)
	// Datagrams are unreliable even on loopback: resend until one arrives.
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("no datagram of MaxDatagramSize arrived in 50 tries")
		}
		if err := da.SendDatagram(want); err != nil {
			t.Fatalf("SendDatagram(%d bytes): %v", len(want), err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout/50)
		got, err := db.RecvDatagram(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			t.Fatalf("RecvDatagram: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("datagram of %d bytes arrived as %d different bytes", len(want), len(got))
		}
		break
	}
	if err := da.SendDatagram(make([]byte, 64<<10)); err == nil {
		t.Fatal("SendDatagram(64 KiB) succeeded; datagrams that cannot fit must fail")
	}
	s.exchange(t, a, b, pattern(5, 10)) // frames still flow
	_ = a.Close()
	if _, err := da.RecvDatagram(s.ctx(t)); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("RecvDatagram after Close = %v, want ErrClosed", err)
	}
}

func (s *suite) stats(t *testing.T) {
	a, b := s.pair(t)
	sa, ok1 := a.(transports.StatsLink)
	sb, ok2 := b.(transports.StatsLink)
	if !ok1 || !ok2 {
		t.Skip("link keeps no stats")
	}
	const n, size = 10, 100
	for i := 0; i < n; i++ {
		s.exchange(t, a, b, pattern(uint32(i), size))
	}
	out, in := sa.Stats(), sb.Stats()
	if s.h.Reliable {
		if out.FramesOut != n || in.FramesIn != n {
			t.Fatalf("after %d frames: sender FramesOut=%d, receiver FramesIn=%d", n, out.FramesOut, in.FramesIn)
		}
		if out.BytesOut < n*size || in.BytesIn < n*size {
			t.Fatalf("after %d bytes: sender BytesOut=%d, receiver BytesIn=%d", n*size, out.BytesOut, in.BytesIn)
		}
	} else if out.FramesOut < n || in.FramesIn < n {
		t.Fatalf("after %d delivered frames: FramesOut=%d FramesIn=%d", n, out.FramesOut, in.FramesIn)
	}
	if out.FramesIn != 0 || in.FramesOut != 0 {
		t.Fatalf("traffic went one way but counters say FramesIn=%d at the sender, FramesOut=%d at the receiver", out.FramesIn, in.FramesOut)
	}
	if out.RTTMillis < 0 {
		t.Fatalf("RTTMillis = %v", out.RTTMillis)
	}
}
