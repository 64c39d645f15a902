package quiclink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Wire format of a Tern QUIC link (ALPN "tern/1").
//
// Frames travel on unidirectional QUIC streams; each side opens its own
// streams for what it sends, and bidirectional streams are refused.
//
//	stream  = kind frame*
//	kind    = 1 byte: 0x01 small-frame stream, 0x02 bulk-frame stream;
//	          a stream of any other kind is ignored (read side cancelled
//	          with code 0x10) so later versions can add kinds
//	frame   = length payload
//	length  = 4 bytes, unsigned big-endian, 0 <= length <= MTU (16 MiB)
//	payload = length bytes, one Link frame, passed up as it is
//
// A sender keeps one small stream for frames up to smallFrameMax (64 KiB)
// and one bulk stream for larger frames, so a file transfer never queues
// chat or control frames behind it. Order is kept within each stream, so
// frames up to 64 KiB keep their order among themselves and so do larger
// frames, but a small frame may overtake a large one sent before it.
// A length above MTU, or a small stream that ends inside a frame, is a
// protocol violation: the connection is closed with application error code
// 0x02 or 0x03. A bulk stream that ends (FIN) inside a frame is how a Send
// whose ctx expires half way backs out: the receiver drops the partial
// frame, keeps every whole frame before it, and the sender opens a new bulk
// stream for its next large frame (so that frame may overtake the tail of
// the old stream).
// QUIC datagrams (RFC 9221) carry DatagramLink payloads as they are.
const (
	kindSmall byte = 0x01
	kindBulk  byte = 0x02

	headerLen     = 4
	MTU           = 16 << 20 // largest frame, bytes
	smallFrameMax = 64 << 10 // frames above this go on the bulk stream

	// allocStep bounds what a declared length makes us allocate before the
	// bytes arrive: a peer cannot make us reserve 16 MiB with 4 bytes.
	allocStep = 1 << 20
)

// Application error codes used on connections and streams.
const (
	codeNone         = 0x00 // normal close
	codeFrameTooLong = 0x02 // peer declared a frame above MTU
	codeTruncated    = 0x03 // stream ended inside a frame
	codeUnknownKind  = 0x10 // stream kind not understood (read side cancelled)
)

// errFrameTooLong is returned by readFrame for a length above the limit.
var errFrameTooLong = errors.New("frame length above the MTU")

// appendHeader appends the 4-byte length of a frame of n bytes.
func appendHeader(b []byte, n int) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// readFrame reads one frame of at most max bytes. It returns io.EOF when r
// ends cleanly between frames, io.ErrUnexpectedEOF when r ends inside one,
// an error wrapping errFrameTooLong for a length above max, and r's own
// error otherwise. Memory grows with the bytes actually received.
func readFrame(r io.Reader, max int) ([]byte, error) { return readFrameFrom(r, max, nil) }

// readFrameFrom is readFrame taking the buffer of a large frame (up to
// allocStep) from pool, when pool is not nil.
func readFrameFrom(r io.Reader, max int, pool *bufPool) ([]byte, error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := uint64(binary.BigEndian.Uint32(hdr[:]))
	if n > uint64(max) {
		return nil, fmt.Errorf("peer declared a frame of %d bytes, above the %d-byte MTU (peer is buggy or not a Tern node): %w", n, max, errFrameTooLong)
	}
	size := int(n)
	var buf []byte
	if pool != nil && size >= poolMin && size <= allocStep {
		buf = pool.get(size)[:0]
	} else {
		buf = make([]byte, 0, min(size, allocStep))
	}
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(size, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(r, buf[len(buf):min(cap(buf), size)])
		buf = buf[:len(buf)+k]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// poolMin is the smallest frame whose buffer is pooled: below it the
// allocation is cheap; above it, a bulk transfer of 1 MiB bundles would
// otherwise allocate (and the GC sweep) a megabyte per frame.
const poolMin = 64 << 10

// bufPool recycles large receive buffers in power-of-two size classes from
// poolMin to allocStep. A buffer comes back only through Link.Release.
type bufPool struct {
	classes [12]sync.Pool // 64 KiB << i, i = 0..4 used (up to 1 MiB)
}

func poolClass(n int) int {
	c := 0
	for (poolMin << c) < n {
		c++
	}
	return c
}

func (p *bufPool) get(n int) []byte {
	c := poolClass(n)
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, poolMin<<c)
}

func (p *bufPool) put(b []byte) {
	c := cap(b)
	if c < poolMin || c > allocStep || c&(c-1) != 0 {
		return // not one of ours
	}
	b = b[:c]
	p.classes[poolClass(c)].Put(&b)
}
