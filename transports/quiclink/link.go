package quiclink

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/ternmesh/tern/transports"
)

// maxDatagram is a payload size that fits a QUIC packet of the 1200-byte
// minimum with the longest short header (1+20+4), the AEAD tag (16) and the
// DATAGRAM frame header (3). Bigger datagrams may work once path MTU
// discovery has run; SendDatagram reports when they do not.
const maxDatagram = 1150

const (
	smallQueue = 1024 // small frames waiting for the writer before Send blocks
	recvQueue  = 256  // received frames waiting for Recv
)

// Link is an open QUIC link to one Tern node. It implements transports.Link,
// transports.StatsLink and transports.DatagramLink. Close is abrupt: frames
// still in flight may be lost, as on any link; the router's custody covers it.
type Link struct {
	conn *quic.Conn
	peer transports.Peer
	log  *slog.Logger
	drop func(*Link) // tells the transport the link is gone

	smallQ  chan []byte   // header+payload, written by smallWriter
	bulkSem chan struct{} // one bulk Send at a time
	bulk    *quic.SendStream

	recvQ chan []byte
	pool  bufPool // large receive buffers, returned through Release

	closed    chan struct{} // local Close
	done      chan struct{} // link dead for any reason
	closeOnce sync.Once
	doneOnce  sync.Once
	cause     error // why done; written before done is closed

	framesIn, framesOut, bytesIn, bytesOut atomic.Uint64
}

func newLink(conn *quic.Conn, peer transports.Peer, log *slog.Logger, drop func(*Link)) *Link {
	l := &Link{
		conn: conn, peer: peer, drop: drop,
		log:     log.With("peer", fmt.Sprintf("%x", peer.Addr), "remote", peer.Remote),
		smallQ:  make(chan []byte, smallQueue),
		bulkSem: make(chan struct{}, 1),
		recvQ:   make(chan []byte, recvQueue),
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	go l.watch()
	go l.acceptStreams()
	go l.smallWriter()
	return l
}

// watch notices the connection dying (peer close, idle timeout, transport
// close) and marks the link dead.
func (l *Link) watch() {
	<-l.conn.Context().Done()
	l.fail(context.Cause(l.conn.Context()))
}

// fail marks the link dead with cause and closes the connection. The first
// cause wins.
func (l *Link) fail(cause error) {
	l.failCode(codeNone, cause)
}

func (l *Link) failCode(code quic.ApplicationErrorCode, cause error) {
	l.doneOnce.Do(func() {
		l.cause = cause
		close(l.done)
		_ = l.conn.CloseWithError(code, cause.Error())
		if l.drop != nil {
			l.drop(l)
		}
	})
}

var errLocalClose = errors.New("closed locally")

func (l *Link) closedErr() error {
	select {
	case <-l.closed:
		return fmt.Errorf("quic link to %s: %w", l.peer.Remote, transports.ErrClosed)
	case <-l.done:
		return fmt.Errorf("quic link to %s: %w: %w", l.peer.Remote, transports.ErrClosed, l.cause)
	default:
		return nil
	}
}

// Send implements transports.Link. Frames up to 64 KiB are copied into the
// small-frame queue and written in batches; larger frames are written
// straight from the caller's slice on the bulk stream, so Send returns once
// QUIC has taken the whole frame.
func (l *Link) Send(ctx context.Context, frame []byte) error {
	if len(frame) > MTU {
		return fmt.Errorf("quic link to %s: send %d bytes: %w (MTU %d)", l.peer.Remote, len(frame), transports.ErrTooBig, MTU)
	}
	if err := l.closedErr(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(frame) > smallFrameMax {
		return l.sendBulk(ctx, frame)
	}
	buf := make([]byte, 0, headerLen+len(frame))
	buf = append(appendHeader(buf, len(frame)), frame...)
	select {
	case l.smallQ <- buf:
		l.sent(len(frame))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return l.closedErr()
	}
}

func (l *Link) sent(n int) {
	l.framesOut.Add(1)
	l.bytesOut.Add(uint64(n))
}

// smallWriter drains smallQ into the small stream through a buffer and
// flushes whenever the queue is empty, so bursts share packets.
func (l *Link) smallWriter() {
	var bw *bufio.Writer
	for {
		var f []byte
		select {
		case f = <-l.smallQ:
		case <-l.done:
			return
		}
		if bw == nil {
			s, err := l.conn.OpenUniStreamSync(l.conn.Context())
			if err != nil {
				l.fail(fmt.Errorf("open small-frame stream: %w", err))
				return
			}
			s.SetPriority(2, false)
			bw = bufio.NewWriterSize(s, 64<<10)
			_ = bw.WriteByte(kindSmall)
		}
		_, _ = bw.Write(f)
	drain:
		for {
			select {
			case f = <-l.smallQ:
				_, _ = bw.Write(f)
			default:
				break drain
			}
		}
		if err := bw.Flush(); err != nil {
			l.fail(fmt.Errorf("write small-frame stream: %w", err))
			return
		}
	}
}

// sendBulk writes one large frame on the bulk stream. If ctx ends half way,
// the stream is finished inside the frame (the peer drops the partial frame)
// and the next large frame opens a new stream.
func (l *Link) sendBulk(ctx context.Context, frame []byte) error {
	select {
	case l.bulkSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return l.closedErr()
	}
	defer func() { <-l.bulkSem }()
	hdr := make([]byte, 0, 1+headerLen)
	if l.bulk == nil {
		s, err := l.conn.OpenUniStreamSync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			l.fail(fmt.Errorf("open bulk stream: %w", err))
			return l.closedErr()
		}
		s.SetPriority(4, true)
		l.bulk = s
		hdr = append(hdr, kindBulk)
	}
	s := l.bulk
	hdr = appendHeader(hdr, len(frame))

	var mu sync.Mutex
	finished := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !finished {
			_ = s.SetWriteDeadline(time.Unix(1, 0))
		}
	})
	_, err := s.Write(hdr)
	if err == nil {
		_, err = s.Write(frame)
	}
	mu.Lock()
	finished = true
	mu.Unlock()
	if !stop() {
		_ = s.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		if ctx.Err() != nil && l.closedErr() == nil {
			// End the stream inside the frame: the peer drops the partial
			// frame but still gets every whole frame before it (a reset
			// would let it discard those too).
			_ = s.Close()
			l.bulk = nil
			return fmt.Errorf("quic link to %s: large frame abandoned half way: %w", l.peer.Remote, ctx.Err())
		}
		l.fail(fmt.Errorf("write bulk stream: %w", err))
		return l.closedErr()
	}
	l.sent(len(frame))
	return nil
}

// acceptStreams hands every unidirectional stream the peer opens to a reader.
func (l *Link) acceptStreams() {
	for {
		s, err := l.conn.AcceptUniStream(l.conn.Context())
		if err != nil {
			return // the connection is gone; watch reports why
		}
		go l.readStream(s)
	}
}

func (l *Link) readStream(s *quic.ReceiveStream) {
	var k [1]byte
	if _, err := io.ReadFull(s, k[:]); err != nil {
		return
	}
	kind := k[0]
	var r io.Reader
	switch kind {
	case kindSmall:
		r = bufio.NewReaderSize(s, 64<<10) // many frames per read
	case kindBulk:
		r = s // frames land straight in their own buffers
	default:
		l.log.Warn("quic link: peer opened a stream of unknown kind; ignoring it", "kind", kind)
		s.CancelRead(codeUnknownKind)
		return
	}
	for {
		f, err := readFrameFrom(r, MTU, &l.pool)
		if err != nil {
			var se *quic.StreamError
			switch {
			case errors.Is(err, io.EOF), errors.As(err, &se):
				return // stream finished, or reset by the peer
			case errors.Is(err, errFrameTooLong):
				l.log.Warn("quic link: closing, peer broke the framing", "err", err)
				l.failCode(codeFrameTooLong, err)
			case errors.Is(err, io.ErrUnexpectedEOF) && kind == kindBulk:
				l.log.Debug("quic link: peer abandoned a large frame half way")
			case errors.Is(err, io.ErrUnexpectedEOF):
				err = fmt.Errorf("peer ended a stream inside a frame: %w", err)
				l.log.Warn("quic link: closing, peer broke the framing", "err", err)
				l.failCode(codeTruncated, err)
			}
			return // other errors: the connection died; watch reports why
		}
		select {
		case l.recvQ <- f:
		case <-l.done:
			return
		}
	}
}

// Recv implements transports.Link. After the peer closes, frames already
// received are returned before ErrClosed; after a local Close, ErrClosed at
// once.
func (l *Link) Recv(ctx context.Context) ([]byte, error) {
	select {
	case <-l.closed:
		return nil, l.closedErr()
	default:
	}
	select {
	case f := <-l.recvQ:
		return l.got(f), nil
	default:
	}
	select {
	case f := <-l.recvQ:
		return l.got(f), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.closed:
		return nil, l.closedErr()
	case <-l.done:
		select {
		case f := <-l.recvQ:
			return l.got(f), nil
		default:
			return nil, l.closedErr()
		}
	}
}

func (l *Link) got(f []byte) []byte {
	l.framesIn.Add(1)
	l.bytesIn.Add(uint64(len(f)))
	return f
}

// Release implements transports.ReleaseLink: the caller is done with a
// frame Recv returned, and its buffer may carry a later frame.
func (l *Link) Release(f []byte) { l.pool.put(f) }

// MTU implements transports.Link: 16 MiB.
func (l *Link) MTU() int { return MTU }

// Peer implements transports.Link. Addr comes from the peer's verified
// proof, so Authenticated is always true.
func (l *Link) Peer() transports.Peer { return l.peer }

// Close implements transports.Link; it is idempotent.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.fail(errLocalClose)
	})
	return nil
}

// Stats implements transports.StatsLink. Byte counts are frame payloads;
// RTTMillis is QUIC's smoothed RTT.
func (l *Link) Stats() transports.Stats {
	rtt := l.conn.ConnectionStats().SmoothedRTT
	return transports.Stats{
		FramesIn: l.framesIn.Load(), FramesOut: l.framesOut.Load(),
		BytesIn: l.bytesIn.Load(), BytesOut: l.bytesOut.Load(),
		RTTMillis: float64(rtt) / float64(time.Millisecond),
	}
}

// ConnectionState reports the TLS state of the link: the negotiated key
// exchange (CurveID, X25519MLKEM768 between Tern nodes), the ALPN, the
// peer's certificate.
func (l *Link) ConnectionState() tls.ConnectionState {
	return l.conn.ConnectionState().TLS
}

// SendDatagram implements transports.DatagramLink: one unreliable QUIC
// datagram. quic-go queues up to 32 datagrams and then blocks until one is
// sent, so callers that must never wait (the router's voice relay) put
// their own bounded queue in front and drop when it is full.
func (l *Link) SendDatagram(b []byte) error {
	if err := l.closedErr(); err != nil {
		return err
	}
	err := l.conn.SendDatagram(b)
	var tooBig *quic.DatagramTooLargeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig):
		return fmt.Errorf("quic link to %s: datagram of %d bytes, the path takes %d: %w", l.peer.Remote, len(b), tooBig.MaxDatagramPayloadSize, transports.ErrTooBig)
	default:
		if e := l.closedErr(); e != nil {
			return e
		}
		return fmt.Errorf("quic link to %s: send datagram: %w", l.peer.Remote, err)
	}
}

// RecvDatagram implements transports.DatagramLink.
func (l *Link) RecvDatagram(ctx context.Context) ([]byte, error) {
	if err := l.closedErr(); err != nil {
		return nil, err
	}
	b, err := l.conn.ReceiveDatagram(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		select { // ReceiveDatagram fails only once the connection is gone
		case <-l.done:
			return nil, l.closedErr()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b, nil
}

// MaxDatagramSize implements transports.DatagramLink: a size that fits any
// QUIC path (1150 bytes).
func (l *Link) MaxDatagramSize() int { return maxDatagram }

var (
	_ transports.Link         = (*Link)(nil)
	_ transports.StatsLink    = (*Link)(nil)
	_ transports.DatagramLink = (*Link)(nil)
)
