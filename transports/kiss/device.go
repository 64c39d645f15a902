package kiss

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.bug.st/serial"

	"github.com/ternmesh/tern/transports/radiolink"
)

// DefaultDest is the AX.25 destination Tern frames are sent to and the
// only one Receive accepts unless ?dest= says otherwise.
var DefaultDest = Address{Call: "TERN"}

// Default timing assumed for the airtime model when the URL does not set
// it (Dire Wolf's own default TXDELAY is 30, i.e. 300 ms).
const (
	DefaultTXDelay    = 300 * time.Millisecond
	DefaultTCPBaud    = 1200
	DefaultSerialBaud = 9600
)

// Config is a parsed kiss+tcp:// or kiss+serial:// URL.
//
//	kiss+tcp://host:port?call=N0CALL-7&dest=TERN&path=WIDE1-1&txdelay=30&persist=63&slottime=10
//	kiss+serial:///dev/ttyUSB0?baud=9600&airbaud=1200&call=N0CALL-7
//
// Query parameters: call (required), dest (default TERN), path
// (comma-separated digipeaters), port (KISS port 0-15), baud (for TCP: the
// radio bit rate, default 1200; for serial: the serial line speed, default
// 9600), airbaud (radio bit rate, default baud for TCP and 1200 for
// serial), txdelay, slottime, txtail (integers in 10 ms units, or Go
// durations such as 250ms), persist (0-255), fullduplex (0/1). The TNC
// parameters are sent to the TNC at open only when present in the URL.
type Config struct {
	Network string // "tcp" or "serial"
	Addr    string // host:port, or the serial device path
	Baud    int    // serial line speed (serial) or radio bit rate (tcp)
	AirBaud int    // radio bit rate, for the airtime model
	Call    Address
	Dest    Address
	Path    []Address
	Port    uint8
	TXDelay time.Duration // used by the airtime model
	TXTail  time.Duration
	Params  []Frame // KISS parameter frames sent at open
}

// ParseURL parses and validates a device URL.
func ParseURL(u *url.URL) (Config, error) {
	c := Config{Dest: DefaultDest, TXDelay: DefaultTXDelay}
	switch u.Scheme {
	case "kiss+tcp":
		c.Network, c.Addr, c.Baud = "tcp", u.Host, DefaultTCPBaud
		if u.Port() == "" {
			return Config{}, fmt.Errorf("kiss: %q needs host:port (Dire Wolf listens on 8001)", u.Redacted())
		}
	case "kiss+serial":
		c.Network, c.Addr, c.Baud, c.AirBaud = "serial", u.Path, DefaultSerialBaud, 1200
		if c.Addr == "" {
			c.Addr = u.Opaque
		}
		if c.Addr == "" {
			return Config{}, fmt.Errorf("kiss: %q needs a device path, e.g. kiss+serial:///dev/ttyUSB0", u.Redacted())
		}
	default:
		return Config{}, fmt.Errorf("kiss: unknown scheme %q: use kiss+tcp://host:port or kiss+serial:///dev/ttyX", u.Scheme)
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "call", "dest", "path", "port", "baud", "airbaud", "txdelay", "slottime", "txtail", "persist", "fullduplex":
		default:
			return Config{}, fmt.Errorf("kiss: unknown URL parameter %q", k)
		}
	}
	call := q.Get("call")
	if call == "" {
		return Config{}, fmt.Errorf("kiss: no callsign in %q: %w", u.Redacted(), ErrNoCallsign)
	}
	var err error
	if c.Call, err = ParseAddress(call); err != nil {
		return Config{}, fmt.Errorf("kiss: %v: %w", err, ErrNoCallsign)
	}
	if s := q.Get("dest"); s != "" {
		if c.Dest, err = ParseAddress(s); err != nil {
			return Config{}, fmt.Errorf("kiss: dest: %w", err)
		}
	}
	if s := q.Get("path"); s != "" {
		for _, p := range strings.Split(s, ",") {
			a, err := ParseAddress(strings.TrimSpace(p))
			if err != nil {
				return Config{}, fmt.Errorf("kiss: path: %w", err)
			}
			c.Path = append(c.Path, a)
		}
		if len(c.Path) > MaxDigis {
			return Config{}, fmt.Errorf("kiss: path has %d digipeaters, at most %d", len(c.Path), MaxDigis)
		}
	}
	intParam := func(name string, lo, hi int, dst *int) error {
		s := q.Get(name)
		if s == "" {
			return nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("kiss: %s=%q must be an integer %d-%d", name, s, lo, hi)
		}
		*dst = n
		return nil
	}
	port, persist, fd := -1, -1, -1
	if err := errors.Join(
		intParam("port", 0, 15, &port),
		intParam("baud", 50, 4000000, &c.Baud),
		intParam("airbaud", 50, 1000000, &c.AirBaud),
		intParam("persist", 0, 255, &persist),
		intParam("fullduplex", 0, 1, &fd),
	); err != nil {
		return Config{}, err
	}
	if port >= 0 {
		c.Port = uint8(port)
	}
	if c.AirBaud == 0 {
		c.AirBaud = c.Baud
	}
	for _, p := range []struct {
		name string
		mk   func(uint8, time.Duration) Frame
		dst  *time.Duration
	}{{"txdelay", TxDelay, &c.TXDelay}, {"slottime", SlotTime, nil}, {"txtail", TxTail, &c.TXTail}} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		d, err := parseTenMs(s)
		if err != nil {
			return Config{}, fmt.Errorf("kiss: %s=%q: %w", p.name, s, err)
		}
		if p.dst != nil {
			*p.dst = d
		}
		c.Params = append(c.Params, p.mk(c.Port, d))
	}
	if persist >= 0 {
		c.Params = append(c.Params, Persistence(c.Port, byte(persist)))
	}
	if fd >= 0 {
		c.Params = append(c.Params, FullDuplex(c.Port, fd == 1))
	}
	return c, nil
}

// parseTenMs reads an integer in KISS 10 ms units or a Go duration.
func parseTenMs(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if n, ierr := strconv.Atoi(s); ierr == nil {
		d, err = time.Duration(n)*10*time.Millisecond, nil
	}
	if err != nil || d < 0 || d > 2550*time.Millisecond {
		return 0, errors.New("want 0-255 (10 ms units) or a duration up to 2.55s")
	}
	return d, nil
}

// Dialer opens a TCP connection (net.Dialer.DialContext fits).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// SerialOpener opens a serial port at a line speed.
type SerialOpener func(path string, baud int) (io.ReadWriteCloser, error)

// Option configures Open.
type Option func(*options)

type options struct {
	dial         Dialer
	openSerial   SerialOpener
	clock        radiolink.Clock
	log          *slog.Logger
	idEvery, idQ time.Duration
}

// WithDialer replaces the TCP dialer (tests, proxies).
func WithDialer(d Dialer) Option { return func(o *options) { o.dial = d } }

// WithSerialOpener replaces go.bug.st/serial (tests).
func WithSerialOpener(f SerialOpener) Option { return func(o *options) { o.openSerial = f } }

// WithClock sets the clock that times station identification.
func WithClock(c radiolink.Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithIDTiming sets the identification interval (at most 10 minutes) and
// the silence after which a series ends with a final identification.
func WithIDTiming(interval, quiet time.Duration) Option {
	return func(o *options) { o.idEvery, o.idQ = interval, quiet }
}

func openSerial(path string, baud int) (io.ReadWriteCloser, error) {
	return serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }
func (wallClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Stats counts a Device's traffic and what it ignored.
type Stats struct {
	TxFrames, TxBytes, IDFrames uint64
	RxFrames, RxBytes           uint64 // Tern frames returned by Receive
	RxOtherDest                 uint64 // UI frames to another destination (APRS, other nets)
	RxNotTern                   uint64 // connected-mode frames, other PIDs
	RxMalformed                 uint64 // undecodable AX.25
	RxTooLong                   uint64 // Tern frames with an info field over MaxFrame
	RxOtherKISS                 uint64 // KISS frames for other ports or non-data commands
	KISSBadEscape, KISSOversize uint64 // frames dropped by the KISS decoder
}

type counters struct {
	txFrames, txBytes, rxFrames, rxBytes, otherDest, notTern, malformed, tooLong, otherKISS, badEsc, oversize atomic.Uint64
}

// Device is a KISS TNC as a radiolink.Device (and radiolink.AirtimeModel).
// It does not reconnect by itself: when the TNC connection drops, Transmit
// and Receive return errors wrapping radiolink.ErrDeviceClosed and the
// owner (the radiolink layer or the daemon's wiring) opens a new Device.
type Device struct {
	cfg    Config
	conn   io.ReadWriteCloser
	log    *slog.Logger
	clock  radiolink.Clock
	id     *Identifier
	rx     chan radiolink.RxFrame
	done   chan struct{}
	failed sync.Once
	closed sync.Once
	errMu  sync.Mutex
	err    error // why done was closed
	wmu    sync.Mutex
	wbuf   []byte
	c      counters
}

var (
	_ radiolink.Device       = (*Device)(nil)
	_ radiolink.AirtimeModel = (*Device)(nil)
)

// Open connects to the TNC named by u, sends the TNC parameters from the
// URL and starts receiving. ctx bounds the connection attempt only.
func Open(ctx context.Context, u *url.URL, opts ...Option) (*Device, error) {
	cfg, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	o := options{clock: wallClock{}, log: slog.Default(), openSerial: openSerial}
	o.dial = (&net.Dialer{}).DialContext
	for _, opt := range opts {
		opt(&o)
	}
	if o.idEvery > MaxIDInterval {
		return nil, fmt.Errorf("kiss: identification interval %v exceeds the legal maximum of %v", o.idEvery, MaxIDInterval)
	}
	var conn io.ReadWriteCloser
	switch cfg.Network {
	case "tcp":
		conn, err = o.dial(ctx, "tcp", cfg.Addr)
	default:
		conn, err = o.openSerial(cfg.Addr, cfg.Baud)
	}
	if err != nil {
		return nil, fmt.Errorf("kiss: cannot reach the TNC at %s %s (is Dire Wolf or the TNC running and KISS enabled?): %w", cfg.Network, cfg.Addr, err)
	}
	d := &Device{
		cfg: cfg, conn: conn, log: o.log.With("tnc", cfg.Network+":"+cfg.Addr, "call", cfg.Call.String()),
		clock: o.clock, rx: make(chan radiolink.RxFrame, 16), done: make(chan struct{}),
	}
	d.id = NewIdentifier(o.clock, o.idEvery, o.idQ, d.sendID, d.log)
	for _, p := range cfg.Params {
		if err := d.writeKISS(ctx, p); err != nil {
			conn.Close()
			return nil, fmt.Errorf("kiss: setting TNC parameters: %w", err)
		}
	}
	go d.readLoop()
	return d, nil
}

// Config returns the parsed configuration.
func (d *Device) Config() Config { return d.cfg }

// MaxFrame is the AX.25 info-field limit, 256 bytes.
func (d *Device) MaxFrame() int { return MaxInfo }

// TimeOnAir estimates how long an n-byte payload occupies the channel:
// TXDELAY, then the AX.25 frame (addresses, control, PID, info, FCS and two
// flags) with HDLC bit stuffing estimated for random data (one extra bit
// per 62), at the radio bit rate, then TXtail.
func (d *Device) TimeOnAir(n int) time.Duration {
	bytes := 2*addrLen + addrLen*len(d.cfg.Path) + 2 + n + 2
	bits := float64(bytes * 8)
	bits += math.Ceil(bits/62) + 16
	return d.cfg.TXDelay + d.cfg.TXTail + time.Duration(bits/float64(d.cfg.AirBaud)*float64(time.Second))
}

// Transmit sends frame as the info field of a UI frame from the station
// callsign to the configured destination.
func (d *Device) Transmit(ctx context.Context, frame []byte) error {
	if len(frame) > MaxInfo {
		return fmt.Errorf("kiss: frame of %d bytes exceeds the AX.25 info limit of %d", len(frame), MaxInfo)
	}
	if err := d.deadErr(); err != nil {
		return err
	}
	ax, err := NewUI(d.cfg.Dest, d.cfg.Call, d.cfg.Path, frame).Encode()
	if err != nil {
		return fmt.Errorf("kiss: %w", err)
	}
	if err := d.writeKISS(ctx, Frame{Port: d.cfg.Port, Command: CmdData, Data: ax}); err != nil {
		return err
	}
	d.c.txFrames.Add(1)
	d.c.txBytes.Add(uint64(len(frame)))
	d.id.Transmitted()
	return nil
}

// TransmitAX25 sends an arbitrary AX.25 frame (for tools and tests); it is
// not counted towards identification.
func (d *Device) TransmitAX25(ctx context.Context, f AX25Frame) error {
	ax, err := f.Encode()
	if err != nil {
		return fmt.Errorf("kiss: %w", err)
	}
	return d.writeKISS(ctx, Frame{Port: d.cfg.Port, Command: CmdData, Data: ax})
}

func (d *Device) sendID() error {
	ax, err := IDFrame(d.cfg.Call).Encode()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.writeKISS(ctx, Frame{Port: d.cfg.Port, Command: CmdData, Data: ax})
}

// writeKISS writes one KISS frame. A failed or partial write leaves the
// byte stream in an unknown state, so it fails the device.
func (d *Device) writeKISS(ctx context.Context, f Frame) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kiss: transmit: %w", err)
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if err := d.deadErr(); err != nil {
		return err
	}
	var err error
	if d.wbuf, err = Append(d.wbuf[:0], f); err != nil {
		return err
	}
	if nc, ok := d.conn.(interface{ SetWriteDeadline(time.Time) error }); ok {
		dl, _ := ctx.Deadline()
		_ = nc.SetWriteDeadline(dl)
		stop := context.AfterFunc(ctx, func() { _ = nc.SetWriteDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	if _, err := d.conn.Write(d.wbuf); err != nil {
		d.fail(fmt.Errorf("writing to the TNC: %w", err))
		return d.deadErr()
	}
	return nil
}

// Receive returns the next Tern frame: a UI frame with PID 0xF0 addressed
// to our destination. Everything else is counted in Stats and skipped.
func (d *Device) Receive(ctx context.Context) (radiolink.RxFrame, error) {
	select {
	case f := <-d.rx:
		return f, nil
	default:
	}
	select {
	case f := <-d.rx:
		return f, nil
	case <-d.done:
		return radiolink.RxFrame{}, d.deadErr()
	case <-ctx.Done():
		return radiolink.RxFrame{}, fmt.Errorf("kiss: receive: %w", ctx.Err())
	}
}

func (d *Device) readLoop() {
	dec := NewDecoder(d.conn, 0)
	for {
		f, err := dec.ReadFrame()
		switch {
		case errors.Is(err, ErrBadEscape):
			d.c.badEsc.Add(1)
			d.log.Debug("kiss: dropped a frame from the TNC", "err", err)
			continue
		case errors.Is(err, ErrFrameTooLong):
			d.c.oversize.Add(1)
			d.log.Debug("kiss: dropped a frame from the TNC", "err", err)
			continue
		case err != nil:
			d.fail(fmt.Errorf("reading from the TNC: %w", err))
			return
		}
		if f.Command != CmdData || f.Port != d.cfg.Port {
			d.c.otherKISS.Add(1)
			continue
		}
		ax, err := DecodeAX25(f.Data)
		switch {
		case err != nil:
			d.c.malformed.Add(1)
			continue
		case !ax.IsUI() || ax.PID != PIDNoL3:
			d.c.notTern.Add(1)
			continue
		case !ax.Dest.Same(d.cfg.Dest):
			d.c.otherDest.Add(1)
			continue
		case len(ax.Info) > MaxInfo:
			d.c.tooLong.Add(1)
			continue
		}
		rf := radiolink.RxFrame{Data: ax.Info, RSSI: math.NaN(), SNR: math.NaN(), At: d.clock.Now()}
		d.c.rxFrames.Add(1)
		d.c.rxBytes.Add(uint64(len(rf.Data)))
		select {
		case d.rx <- rf:
		case <-d.done:
			return
		}
	}
}

// fail marks the device dead with cause (the first cause wins) and closes
// the connection.
func (d *Device) fail(cause error) {
	d.failed.Do(func() {
		d.errMu.Lock()
		d.err = cause
		d.errMu.Unlock()
		if !errors.Is(cause, radiolink.ErrDeviceClosed) {
			d.log.Error("kiss: lost the TNC connection; reopen the device to continue", "err", cause)
		}
		close(d.done)
		d.id.Stop()
		_ = d.conn.Close()
	})
}

func (d *Device) deadErr() error {
	select {
	case <-d.done:
	default:
		return nil
	}
	d.errMu.Lock()
	defer d.errMu.Unlock()
	if errors.Is(d.err, radiolink.ErrDeviceClosed) {
		return fmt.Errorf("kiss %s: %w", d.cfg.Addr, d.err)
	}
	return fmt.Errorf("kiss %s: %w: %v", d.cfg.Addr, radiolink.ErrDeviceClosed, d.err)
}

// Close sends a final identification if a transmission series is still
// open, then closes the TNC connection. It is idempotent.
func (d *Device) Close() error {
	d.closed.Do(func() {
		d.id.Finish()
		d.fail(radiolink.ErrDeviceClosed)
	})
	return nil
}

// Stats returns the device's counters.
func (d *Device) Stats() Stats {
	return Stats{
		TxFrames: d.c.txFrames.Load(), TxBytes: d.c.txBytes.Load(), IDFrames: d.id.Sent(),
		RxFrames: d.c.rxFrames.Load(), RxBytes: d.c.rxBytes.Load(),
		RxOtherDest: d.c.otherDest.Load(), RxNotTern: d.c.notTern.Load(), RxMalformed: d.c.malformed.Load(),
		RxTooLong: d.c.tooLong.Load(), RxOtherKISS: d.c.otherKISS.Load(),
		KISSBadEscape: d.c.badEsc.Load(), KISSOversize: d.c.oversize.Load(),
	}
}
