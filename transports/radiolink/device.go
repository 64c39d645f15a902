// Package radiolink turns a frame radio (a LoRa chip or modem, a KISS TNC)
// into Tern links: one transports.Link per neighbour heard on the shared
// channel, with compact framing, fragmentation with selective repair, an
// airtime budget and a scheduler in between. Every radio driver plugs in
// below it through Device; the router sees only Links above it.
package radiolink

import (
	"context"
	"errors"
	"time"
)

// ErrDeviceClosed is returned (wrapped) by a Device after Close or when the
// hardware went away (a modem unplugged, a TNC connection lost).
var ErrDeviceClosed = errors.New("radio device closed")

// RxFrame is one frame received from the air.
type RxFrame struct {
	Data []byte
	// RSSI in dBm and SNR in dB of this frame; NaN when the device does
	// not report them (a KISS TNC).
	RSSI, SNR float64
	// At is when the frame ended, by the device's clock.
	At time.Time
}

// Device is a half-duplex frame radio.
//
// Contract:
//   - Transmit puts one frame on the air and returns when the frame has been
//     sent (or handed to a TNC that will send it); it honours ctx. Frames
//     longer than MaxFrame fail without transmitting. Transmit calls are
//     serialised by the caller.
//   - Receive blocks until a frame arrives, the device fails, or ctx ends.
//     Frames with a bad CRC are never returned. The returned Data belongs
//     to the caller. Receive is called from one goroutine.
//   - After Close, or when the hardware goes away, both return an error
//     wrapping ErrDeviceClosed. Close is idempotent.
type Device interface {
	Transmit(ctx context.Context, frame []byte) error
	Receive(ctx context.Context) (RxFrame, error)
	MaxFrame() int
	Close() error
}

// Optional capabilities, found by type assertion.

// CarrierSense is a device that can tell whether the channel is busy now
// (LoRa CAD, a modem's channel-busy report), for listen-before-talk.
type CarrierSense interface {
	ChannelBusy() bool
}

// AirtimeModel is a device that knows how long a frame of n bytes occupies
// the air (LoRa: the Semtech formula for its settings; AFSK: bits / baud
// plus TXDELAY). The link layer uses it for the duty-cycle budget and for
// capacity-based caps such as the 3 % limit on control traffic.
type AirtimeModel interface {
	TimeOnAir(n int) time.Duration
}

// Clock is the time source of the link layer. Real links use the wall
// clock; tests and simulations use lora/radiosim's virtual clock, so that
// hours of radio traffic run in milliseconds and deterministically.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f once, d from now, on a goroutine of the clock's
	// choosing (never while the caller holds a lock the clock needs); the
	// returned Stop cancels it if it has not run yet.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}
