// Package modem drives serial LoRa modems as Tern radio devices: an RNode
// (KISS-framed host protocol), an Ebyte E22 module or the Waveshare UART
// LoRa HAT built on it (transparent or fixed-address mode, configured
// through its M0/M1 pins), and a RAK3172 running RUI3 AT firmware (P2P
// mode). Each driver implements transports/radiolink.Device and
// radiolink.AirtimeModel, so a modem plugged into a laptop or a Pi serial
// port becomes a Tern link.
//
// Serial ports are opened through a PortOpener; production uses
// SerialOpener (go.bug.st/serial), tests inject pseudo-terminals served by
// lora/modememu. A daemon URL such as
// "rnode:///dev/ttyUSB0?freq=869.525&bw=250&sf=11&cr=5&txp=14" parses into
// a Config (ParseURL) and Open starts the matching driver.
//
// When a modem goes away (cable pulled, USB re-enumerated), Transmit and
// Receive return a *GoneError, which wraps radiolink.ErrDeviceClosed (the
// Device contract) and ErrModemGone. Reopener wraps a driver and reopens it
// with exponential backoff, so a daemon survives a replugged modem.
//
// Protocol facts come from /work/shared/specs/radio-interfaces.md section 4.
// Facts the spec does not settle are marked [unverified] and are options.
package modem

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.bug.st/serial"

	"github.com/ternmesh/tern/transports/radiolink"
)

// PortOpener opens a serial port at the given line settings. Production uses
// SerialOpener; tests inject their own.
type PortOpener func(path string, mode *serial.Mode) (io.ReadWriteCloser, error)

// SerialOpener opens a real serial port (or any tty) with go.bug.st/serial.
func SerialOpener(path string, mode *serial.Mode) (io.ReadWriteCloser, error) {
	p, err := serial.Open(path, mode)
	if err != nil {
		return nil, fmt.Errorf("open serial port %s at %d baud: %w (check the path with `tern hw list` and that you may use it, e.g. the dialout group)", path, mode.BaudRate, err)
	}
	return p, nil
}

// Modem is what every driver here provides.
type Modem interface {
	radiolink.Device
	radiolink.AirtimeModel
}

// ErrModemGone marks errors caused by a modem that disappeared (its serial
// port closed or failed). Errors wrapping it from a Reopener are transient.
var ErrModemGone = errors.New("modem went away")

// GoneError reports a modem whose serial port failed. It matches both
// ErrModemGone and radiolink.ErrDeviceClosed with errors.Is.
type GoneError struct {
	Kind, Path string
	Err        error // the read or write error seen
}

func (e *GoneError) Error() string {
	return fmt.Sprintf("%s modem on %s went away (%v): check the cable; tern retries", e.Kind, e.Path, e.Err)
}

// Is makes errors.Is match ErrModemGone and radiolink.ErrDeviceClosed.
func (e *GoneError) Is(target error) bool {
	return target == ErrModemGone || target == radiolink.ErrDeviceClosed
}

// Unwrap returns the underlying port error.
func (e *GoneError) Unwrap() error { return e.Err }

// errClosed is returned after Close.
func errClosed(kind, path string) error {
	return fmt.Errorf("%s modem on %s: %w (Close was called)", kind, path, radiolink.ErrDeviceClosed)
}

// AfterFunc returns a channel that delivers once d has passed; time.After
// is the default. Tests inject a faster one to match an emulator's clock.
type AfterFunc func(d time.Duration) <-chan time.Time

func (f AfterFunc) orDefault() AfterFunc {
	if f == nil {
		return time.After
	}
	return f
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// chunk is bytes read from a port and when they arrived.
type chunk struct {
	b  []byte
	at time.Time
}

// pumpPort reads port until it fails and sends what it reads on out. It
// closes out and sets *errp (before closing) when the read fails.
func pumpPort(port io.Reader, out chan<- chunk, errp *error, now func() time.Time) {
	buf := make([]byte, 1024)
	for {
		n, err := port.Read(buf)
		if n > 0 {
			out <- chunk{b: append([]byte(nil), buf[:n]...), at: now()}
		}
		if err != nil {
			*errp = err
			close(out)
			return
		}
	}
}

// lineMode returns 8N1 at baud.
func lineMode(baud int) *serial.Mode {
	return &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit}
}
