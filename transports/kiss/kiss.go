// Package kiss drives an amateur packet-radio TNC (a hardware TNC on a
// serial port, or Dire Wolf over TCP) through the KISS protocol and carries
// Tern frames in AX.25 UI frames, as a radiolink.Device.
//
// The package has three layers: the KISS codec (this file), AX.25 UI frames
// and callsigns (ax25.go), and the Device with station identification
// (device.go, id.go). Nothing here encrypts: amateur rules forbid it, and
// every frame carries the station callsign in its AX.25 source address.
package kiss

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"
)

// KISS special bytes.
const (
	FEND  = 0xC0 // frame end
	FESC  = 0xDB // frame escape
	TFEND = 0xDC // transposed FEND (after FESC)
	TFESC = 0xDD // transposed FESC (after FESC)
)

// Command is the low nibble of a KISS frame's first byte (CmdReturn is the
// whole byte 0xFF).
type Command byte

// KISS commands.
const (
	CmdData        Command = 0x0
	CmdTxDelay     Command = 0x1 // keyup delay, in 10 ms units
	CmdPersistence Command = 0x2 // p-persistence parameter P: p = (P+1)/256
	CmdSlotTime    Command = 0x3 // slot interval, in 10 ms units
	CmdTxTail      Command = 0x4 // time to hold after the frame, in 10 ms units (obsolete)
	CmdFullDuplex  Command = 0x5 // 0 half duplex, nonzero full duplex
	CmdSetHardware Command = 0x6 // TNC-specific
	CmdReturn      Command = 0xFF
)

// DefaultMaxFrame is the decoder's default cap on one unescaped KISS frame
// (command byte included): room for a full AX.25 frame with eight
// digipeaters and a 256-byte info field, with margin for TNCs configured
// for longer info fields.
const DefaultMaxFrame = 1024

// Decoder errors. Both are recoverable: the offending frame is dropped and
// the next ReadFrame continues with the following frame.
var (
	ErrBadEscape     = errors.New("kiss: broken escape sequence (FESC not followed by TFEND or TFESC)")
	ErrFrameTooLong  = errors.New("kiss: frame longer than the decoder's limit")
	errReturnHasPort = errors.New("kiss: the Return command has no port")
)

// Frame is one KISS frame.
type Frame struct {
	Port    uint8 // 0-15, high nibble of the command byte
	Command Command
	Data    []byte
}

// Append escapes f and appends it, framed by FENDs, to dst. It fails only
// for a port above 15 or a Return frame with a port.
func Append(dst []byte, f Frame) ([]byte, error) {
	var cmd byte
	switch {
	case f.Command == CmdReturn:
		if f.Port != 0 {
			return dst, errReturnHasPort
		}
		cmd = 0xFF
	case f.Port > 15:
		return dst, fmt.Errorf("kiss: port %d out of range 0-15", f.Port)
	case f.Command > 0xF:
		return dst, fmt.Errorf("kiss: command %#x out of range 0-15", byte(f.Command))
	default:
		cmd = f.Port<<4 | byte(f.Command)
	}
	dst = append(dst, FEND)
	dst = appendEscaped(dst, cmd)
	for _, b := range f.Data {
		dst = appendEscaped(dst, b)
	}
	return append(dst, FEND), nil
}

// Encode returns f escaped and framed by FENDs.
func Encode(f Frame) ([]byte, error) {
	return Append(make([]byte, 0, len(f.Data)+len(f.Data)/32+4), f)
}

func appendEscaped(dst []byte, b byte) []byte {
	switch b {
	case FEND:
		return append(dst, FESC, TFEND)
	case FESC:
		return append(dst, FESC, TFESC)
	}
	return append(dst, b)
}

// tenMs converts d to KISS 10 ms units, rounded to nearest and clamped to
// 0-255.
func tenMs(d time.Duration) byte {
	u := (d + 5*time.Millisecond) / (10 * time.Millisecond)
	switch {
	case u < 0:
		return 0
	case u > 255:
		return 255
	}
	return byte(u)
}

// TxDelay is the frame that sets the keyup delay (10 ms resolution, at most 2.55 s).
func TxDelay(port uint8, d time.Duration) Frame {
	return Frame{Port: port, Command: CmdTxDelay, Data: []byte{tenMs(d)}}
}

// Persistence is the frame that sets P (transmit probability (P+1)/256 when the channel is clear).
func Persistence(port uint8, p byte) Frame {
	return Frame{Port: port, Command: CmdPersistence, Data: []byte{p}}
}

// SlotTime is the frame that sets the CSMA slot interval (10 ms resolution).
func SlotTime(port uint8, d time.Duration) Frame {
	return Frame{Port: port, Command: CmdSlotTime, Data: []byte{tenMs(d)}}
}

// TxTail is the frame that sets the hold time after a frame (10 ms resolution).
func TxTail(port uint8, d time.Duration) Frame {
	return Frame{Port: port, Command: CmdTxTail, Data: []byte{tenMs(d)}}
}

// FullDuplex is the frame that selects full (true) or half duplex.
func FullDuplex(port uint8, on bool) Frame {
	v := byte(0)
	if on {
		v = 1
	}
	return Frame{Port: port, Command: CmdFullDuplex, Data: []byte{v}}
}

// SetHardware is the frame carrying a TNC-specific command.
func SetHardware(port uint8, data []byte) Frame {
	return Frame{Port: port, Command: CmdSetHardware, Data: data}
}

// Return is the frame that makes a TNC leave KISS mode.
func Return() Frame { return Frame{Command: CmdReturn} }

// DecoderStats counts what a Decoder threw away.
type DecoderStats struct {
	Frames     uint64 // frames returned
	BadEscape  uint64 // frames dropped for a broken escape
	Oversize   uint64 // frames dropped for exceeding the limit
	Garbage    uint64 // bytes discarded before the first FEND
	EmptyFENDs uint64 // empty frames (back-to-back FENDs) skipped
}

// Decoder reads KISS frames from a byte stream. It discards bytes before
// the first FEND (so it resynchronises on a stream joined mid-frame),
// skips back-to-back FENDs, drops frames with broken escapes (ErrBadEscape)
// or longer than its limit (ErrFrameTooLong) and then continues with the
// next frame. It never buffers more than its limit. Not safe for
// concurrent use.
type Decoder struct {
	r      *bufio.Reader
	max    int
	buf    []byte
	synced bool
	stats  DecoderStats
}

// NewDecoder returns a decoder reading r that drops frames whose unescaped
// length (command byte included) exceeds maxFrame; maxFrame <= 0 means
// DefaultMaxFrame.
func NewDecoder(r io.Reader, maxFrame int) *Decoder {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Decoder{r: bufio.NewReader(r), max: maxFrame}
}

// Stats returns the decoder's counters.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// ReadFrame returns the next frame. Errors wrapping ErrBadEscape or
// ErrFrameTooLong are recoverable: call ReadFrame again. Any other error
// comes from the underlying reader (io.EOF at a clean end) and is final; a
// partial frame at the end of the stream is discarded. The returned Data
// is a fresh slice owned by the caller.
func (d *Decoder) ReadFrame() (Frame, error) {
	for {
		if !d.synced {
			// Skip to the first FEND.
			for {
				b, err := d.r.ReadByte()
				if err != nil {
					return Frame{}, err
				}
				if b == FEND {
					d.synced = true
					break
				}
				d.stats.Garbage++
			}
		}
		f, err := d.readOne()
		if err == errEmpty {
			d.stats.EmptyFENDs++
			continue
		}
		return f, err
	}
}

var errEmpty = errors.New("empty frame")

// readOne reads the bytes after a FEND up to and including the next FEND.
func (d *Decoder) readOne() (Frame, error) {
	d.buf = d.buf[:0]
	var bad error
	esc := false
	for {
		b, err := d.r.ReadByte()
		if err != nil {
			return Frame{}, err
		}
		if b == FEND {
			if esc && bad == nil {
				bad = ErrBadEscape
			}
			break
		}
		if bad != nil {
			continue // resynchronise: skip to the next FEND
		}
		if esc {
			esc = false
			switch b {
			case TFEND:
				b = FEND
			case TFESC:
				b = FESC
			default:
				bad = ErrBadEscape
				continue
			}
		} else if b == FESC {
			esc = true
			continue
		}
		if len(d.buf) >= d.max {
			bad = ErrFrameTooLong
			continue
		}
		d.buf = append(d.buf, b)
	}
	switch bad {
	case ErrBadEscape:
		d.stats.BadEscape++
		return Frame{}, fmt.Errorf("dropped a KISS frame after %d bytes: %w", len(d.buf), bad)
	case ErrFrameTooLong:
		d.stats.Oversize++
		return Frame{}, fmt.Errorf("dropped a KISS frame over %d bytes: %w", d.max, bad)
	}
	if len(d.buf) == 0 {
		return Frame{}, errEmpty
	}
	d.stats.Frames++
	f := Frame{Port: d.buf[0] >> 4, Command: Command(d.buf[0] & 0x0F)}
	if d.buf[0] == 0xFF {
		f = Frame{Command: CmdReturn}
	}
	f.Data = append([]byte(nil), d.buf[1:]...)
	return f, nil
}
