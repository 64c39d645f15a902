package call

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"math/bits"

	"golang.org/x/crypto/chacha20poly1305"
)

// Media frame: the payload of one voice datagram (package router adds its
// 18-byte header with the destination and hop limit). Bytes:
//
//	0   1   version: 0x01
//	1   8   call tag: the first 8 bytes of the call ID
//	9   4   sequence number, big endian: 0 for the sender's first frame,
//	        +1 for each frame it sends; never reused within a call
//	13  n   ChaCha20-Poly1305 ciphertext and 16-byte tag of the plaintext:
//	          0   4   media timestamp: capture time in 48 kHz ticks (the browser's)
//	          4   4   sent: the sender's clock in µs since its call began
//	          8   4   echo: "sent" of the newest frame the sender received, for RTT
//	          12  4   echo delay: µs between receiving that frame and sending
//	                  this one; 0xFFFFFFFF when nothing was received yet
//	          16  m   one Opus frame (20 ms), as the browser's encoder made it
//
// Key: the sender's own media key for this call (invite or accept).
// Nonce (12 bytes): direction (0 from the caller, 1 from the callee), three
// zero bytes, the sequence number as 8 bytes big endian. A key is random,
// made for one call and one direction, and held only in memory, so a
// (key, nonce) pair is never used twice. Associated data: bytes 0 to 12.
const (
	frameVersion    = 0x01
	frameHead       = 1 + 8 + 4
	framePlainHead  = 16
	noEcho          = 0xFFFFFFFF
	dirFromCaller   = 0
	dirFromCallee   = 1
	replayWindow    = 256 // sequence numbers remembered below the newest
	replayWindowW64 = replayWindow / 64
)

// FrameOverhead is what a media frame adds to an Opus frame.
const FrameOverhead = frameHead + framePlainHead + chacha20poly1305.Overhead

// MaxOpus is the largest Opus frame a media frame carries over QUIC (1150-
// byte datagrams, 18 of them the router's header).
const MaxOpus = 1150 - 18 - FrameOverhead

// Frame is one audio frame as the browser sends and receives it.
type Frame struct {
	Seq       uint32 // the sender's sequence number (gaps are losses)
	Timestamp uint32 // capture time, 48 kHz ticks
	Data      []byte // one Opus frame
}

// frameTimes are the clear-text timing fields of a frame.
type frameTimes struct {
	media, sent, echo, delay uint32
}

func newAEAD(key [KeySize]byte) cipher.AEAD {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic(fmt.Sprintf("call: chacha20poly1305 refused a %d-byte key: %v", KeySize, err)) // unreachable: the size is fixed
	}
	return a
}

func frameNonce(dir byte, seq uint32) []byte {
	n := make([]byte, chacha20poly1305.NonceSize)
	n[0] = dir
	binary.BigEndian.PutUint64(n[4:], uint64(seq))
	return n
}

// sealer encrypts the frames one side sends.
type sealer struct {
	aead cipher.AEAD
	dir  byte
	tag  [8]byte
	next uint64 // next sequence number; above 1<<32-1 the call must end
}

// errSeqExhausted: 2^32 frames (2.7 years of audio) were sent on one key.
var errSeqExhausted = fmt.Errorf("this call has sent 2^32 frames: hang up and call again")

func (s *sealer) seal(t frameTimes, opus []byte) ([]byte, uint32, error) {
	if s.next > 1<<32-1 {
		return nil, 0, errSeqExhausted
	}
	seq := uint32(s.next)
	s.next++
	out := make([]byte, frameHead, frameHead+framePlainHead+len(opus)+chacha20poly1305.Overhead)
	out[0] = frameVersion
	copy(out[1:9], s.tag[:])
	binary.BigEndian.PutUint32(out[9:13], seq)
	pt := make([]byte, framePlainHead+len(opus))
	binary.BigEndian.PutUint32(pt[0:], t.media)
	binary.BigEndian.PutUint32(pt[4:], t.sent)
	binary.BigEndian.PutUint32(pt[8:], t.echo)
	binary.BigEndian.PutUint32(pt[12:], t.delay)
	copy(pt[framePlainHead:], opus)
	return s.aead.Seal(out, frameNonce(s.dir, seq), pt, out[:frameHead]), seq, nil
}

// parseFrameHead reads the clear part of a media frame.
func parseFrameHead(p []byte) (tag [8]byte, seq uint32, err error) {
	if len(p) < frameHead+framePlainHead+chacha20poly1305.Overhead {
		return tag, 0, fmt.Errorf("%w: media frame of %d bytes is shorter than the %d-byte minimum", ErrMalformed, len(p), frameHead+framePlainHead+chacha20poly1305.Overhead)
	}
	if p[0] != frameVersion {
		return tag, 0, fmt.Errorf("%w: media frame version 0x%02x, want 0x%02x", ErrMalformed, p[0], frameVersion)
	}
	return [8]byte(p[1:9]), binary.BigEndian.Uint32(p[9:13]), nil
}

// window remembers which of the last replayWindow sequence numbers arrived:
// it refuses replays and frames too old to tell, and measures loss.
type window struct {
	started bool
	first   uint32 // first sequence number received
	highest uint32
	bits    [replayWindowW64]uint64 // bit i: highest-i arrived
}

// check says whether seq may be accepted (before the frame is opened).
func (w *window) check(seq uint32) error {
	if !w.started || seq > w.highest {
		return nil
	}
	d := w.highest - seq
	if d >= replayWindow {
		return fmt.Errorf("frame %d is %d frames older than the newest: too old", seq, d)
	}
	if w.bits[d/64]&(1<<(d%64)) != 0 {
		return fmt.Errorf("frame %d arrived twice", seq)
	}
	return nil
}

// mark records seq as arrived; call only after check and authentication.
// It reports whether seq is the newest so far.
func (w *window) mark(seq uint32) bool {
	if !w.started {
		w.started, w.first, w.highest = true, seq, seq
		w.bits[0] = 1
		return true
	}
	if seq > w.highest {
		w.shift(seq - w.highest)
		w.highest = seq
		w.bits[0] |= 1
		return true
	}
	d := w.highest - seq
	w.bits[d/64] |= 1 << (d % 64)
	return false
}

// shift moves the window up by n: bit i becomes bit i+n.
func (w *window) shift(n uint32) {
	if n >= replayWindow {
		w.bits = [replayWindowW64]uint64{}
		return
	}
	words, rem := int(n/64), n%64
	for i := replayWindowW64 - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = w.bits[j] << rem
			if rem > 0 && j > 0 {
				v |= w.bits[j-1] >> (64 - rem)
			}
		}
		w.bits[i] = v
	}
}

// span is how many sequence numbers the window covers so far.
func (w *window) span() int {
	if !w.started {
		return 0
	}
	return int(min(uint64(w.highest-w.first)+1, replayWindow))
}

// lossPercent is the share of the frames in the window that never came.
func (w *window) lossPercent() float64 {
	n := w.span()
	if n == 0 {
		return 0
	}
	got := 0
	for i := range w.bits {
		if i*64 >= n {
			break
		}
		v := w.bits[i]
		if rest := n - i*64; rest < 64 {
			v &= 1<<rest - 1
		}
		got += bits.OnesCount64(v)
	}
	return 100 * float64(n-got) / float64(n)
}

// opener decrypts the frames the peer sends.
type opener struct {
	aead cipher.AEAD
	dir  byte
	win  window
}

// open authenticates and decrypts one frame whose head was parsed; it
// refuses replays. opus aliases a fresh buffer.
func (o *opener) open(p []byte, seq uint32) (frameTimes, []byte, bool, error) {
	if err := o.win.check(seq); err != nil {
		return frameTimes{}, nil, false, err
	}
	pt, err := o.aead.Open(nil, frameNonce(o.dir, seq), p[frameHead:], p[:frameHead])
	if err != nil {
		return frameTimes{}, nil, false, fmt.Errorf("media frame %d fails authentication (forged, altered, or another call's): %w", seq, err)
	}
	newest := o.win.mark(seq)
	t := frameTimes{
		media: binary.BigEndian.Uint32(pt[0:]), sent: binary.BigEndian.Uint32(pt[4:]),
		echo: binary.BigEndian.Uint32(pt[8:]), delay: binary.BigEndian.Uint32(pt[12:]),
	}
	return t, pt[framePlainHead:], newest, nil
}
