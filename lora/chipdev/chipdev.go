// Package chipdev is the device lifecycle shared by the SPI LoRa chip
// drivers (lora/sx127x, lora/sx126x): the owner goroutine, the transmit and
// receive queues, the periodic health check, link-down reporting with
// reset-and-retry, the counters and the radiolink.Device methods. Each
// driver supplies only its register or command code, behind Chip.
//
// One goroutine owns the chip and its interrupt line. It serves transmit
// requests and, when the interrupt line is high, asks the chip for a
// received packet. When the chip stops answering the link is reported down
// and re-initialised (which pulses RESET); while that fails, Transmit
// returns ErrLinkDown and re-initialisation is retried every RetryInterval.
//
// Time comes from Timing.Now and Timing.Sleep and from the interrupt pin's
// WaitForEdge timeouts, so tests drive a driver on an emulator's virtual
// clock.
package chipdev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/transports/radiolink"
)

// ErrLinkDown is returned (wrapped) while the chip is being recovered.
var ErrLinkDown = errors.New("radio link down: the chip stopped answering and is being reset")

// Chip is one radio chip as the core drives it.
//
// Contract: the core calls every method from one goroutine at a time, under
// its lock, so a Chip needs no locking of its own.
//   - Init resets the chip (pulsing RESET if wired), checks it answers,
//     configures it and enters continuous receive.
//   - Transmit sends one frame, waits for TxDone (bounded, see TxTimeout)
//     and returns the chip to continuous receive; an error means the chip
//     failed and the link goes down.
//   - Receive is called when the interrupt line is high: it reads and
//     clears the interrupt and returns the packet, if any. A Packet with
//     nil Data and no CRCError is nothing to deliver; an error means the
//     chip failed and is re-initialised at once.
//   - Health reports an error when an idle chip is no longer receiving.
//   - RSSI returns the instantaneous channel RSSI in dBm.
//   - Stop is called once on Close, after the owner goroutine ended; up
//     says whether the link was up.
type Chip interface {
	Init() error
	Transmit(frame []byte) error
	Receive() (Packet, error)
	Health() error
	RSSI() (float64, error)
	Stop(up bool)
}

// Packet is what Chip.Receive read.
type Packet struct {
	Data      []byte
	RSSI, SNR float64
	// CRCError: a packet arrived with a bad payload CRC (or header); it is
	// counted and dropped.
	CRCError bool
}

// Stats counts what the driver did.
type Stats struct {
	TxFrames, RxFrames, CRCErrors, Dropped, Timeouts, Resets int
}

// Timing is the clock and the intervals of the owner goroutine.
type Timing struct {
	// PollInterval is how often the owner goroutine looks for work; 0 means 10 ms.
	PollInterval time.Duration
	// RetryInterval is the pause between recovery attempts; 0 means 1 s.
	RetryInterval time.Duration
	// HealthInterval is how often an idle chip is checked to still be in RX; 0 means 10 s.
	HealthInterval time.Duration
	// CarrierThresholdDBm: ChannelBusy when the RSSI is above it; 0 means -100.
	CarrierThresholdDBm float64
	// Now and Sleep are the clock; nil means the wall clock.
	Now   func() time.Time
	Sleep func(time.Duration)
	// Logger gets link up/down events; nil means slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns t with its zero fields set to the defaults.
func (t Timing) WithDefaults() Timing {
	if t.PollInterval <= 0 {
		t.PollInterval = 10 * time.Millisecond
	}
	if t.RetryInterval <= 0 {
		t.RetryInterval = time.Second
	}
	if t.HealthInterval <= 0 {
		t.HealthInterval = 10 * time.Second
	}
	if t.CarrierThresholdDBm == 0 {
		t.CarrierThresholdDBm = -100
	}
	if t.Now == nil {
		t.Now = time.Now
	}
	if t.Sleep == nil {
		t.Sleep = time.Sleep
	}
	if t.Logger == nil {
		t.Logger = slog.Default()
	}
	return t
}

// Config describes the chip to the core.
type Config struct {
	// Name prefixes errors and log messages ("sx127x").
	Name string
	// IRQ is the chip's interrupt line, configured for rising edges.
	IRQ         gpio.PinIn
	FrequencyHz int64
	Modulation  airtime.Params
	// Timing must already have its defaults (Timing.WithDefaults).
	Timing Timing
}

// Core runs a Chip as a radiolink.Device (also radiolink.AirtimeModel and
// radiolink.CarrierSense).
type Core struct {
	chip Chip
	cfg  Config
	t    Timing
	log  *slog.Logger

	mu         sync.Mutex // chip access and the fields below
	up         bool
	lastErr    error
	nextRetry  time.Time
	nextHealth time.Time
	stats      Stats

	txq       chan txReq
	rxq       chan radiolink.RxFrame
	closed    chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type txReq struct {
	frame []byte
	res   chan error
}

var _ radiolink.Device = (*Core)(nil)

// Open initialises the chip and starts the owner goroutine. It returns the
// chip's Init error if the first initialisation fails.
func Open(chip Chip, cfg Config) (*Core, error) {
	if cfg.IRQ == nil {
		return nil, fmt.Errorf("%s: interrupt pin missing: the driver needs the chip's IRQ line", cfg.Name)
	}
	c := &Core{chip: chip, cfg: cfg, t: cfg.Timing, log: cfg.Timing.Logger.With("radio", cfg.Name),
		txq: make(chan txReq), rxq: make(chan radiolink.RxFrame, 32),
		closed: make(chan struct{}), done: make(chan struct{})}
	c.mu.Lock()
	err := c.initLocked()
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	go c.loop()
	return c, nil
}

// TxTimeout is the bound on the wait for TxDone: configured if positive,
// else time on air * 1.5 + 100 ms.
func TxTimeout(configured time.Duration, m airtime.Params, n int) time.Duration {
	if configured > 0 {
		return configured
	}
	toa := m.TimeOnAir(n)
	return toa + toa/2 + 100*time.Millisecond
}

// WaitHigh waits for pin to read high, at most timeout on the clock now.
func WaitHigh(pin gpio.PinIn, timeout time.Duration, now func() time.Time) bool {
	deadline := now().Add(timeout)
	for pin.Read() != gpio.High {
		rem := deadline.Sub(now())
		if rem <= 0 {
			return false
		}
		pin.WaitForEdge(rem)
	}
	return true
}

func (c *Core) initLocked() error {
	if err := c.chip.Init(); err != nil {
		return err
	}
	c.nextHealth = c.t.Now().Add(c.t.HealthInterval)
	if !c.up {
		m := c.cfg.Modulation
		c.log.Info(c.cfg.Name+" link up", "freq_hz", c.cfg.FrequencyHz, "modulation", m.String(), "ldro", m.LDRO())
	}
	c.up, c.lastErr = true, nil
	return nil
}

// markDownLocked reports the link down; the owner goroutine resets and
// re-initialises the chip on its next turn, so Transmit returns at once.
func (c *Core) markDownLocked(cause error) {
	if c.up {
		c.log.Warn(c.cfg.Name+" link down: resetting the chip", "err", cause)
	}
	c.up, c.lastErr, c.nextRetry = false, cause, c.t.Now()
}

// recoverLocked marks the link down (if up) and re-initialises. It
// returns the init error.
func (c *Core) recoverLocked(cause error) error {
	if c.up {
		c.log.Warn(c.cfg.Name+" link down: resetting the chip", "err", cause)
	}
	c.up, c.lastErr = false, cause
	c.stats.Resets++
	if err := c.initLocked(); err != nil {
		c.lastErr = err
		c.nextRetry = c.t.Now().Add(c.t.RetryInterval)
		return err
	}
	return nil
}

func (c *Core) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.closed:
			return
		case req := <-c.txq:
			req.res <- c.transmit(req.frame)
			continue
		default:
		}
		c.mu.Lock()
		up := c.up
		now := c.t.Now()
		if !up && !now.Before(c.nextRetry) {
			c.recoverLocked(c.lastErr)
		} else if up && !now.Before(c.nextHealth) {
			c.nextHealth = now.Add(c.t.HealthInterval)
			if err := c.chip.Health(); err != nil {
				c.recoverLocked(fmt.Errorf("health check: %w", err))
			}
		}
		c.mu.Unlock()
		if !up {
			c.t.Sleep(c.t.PollInterval)
			continue
		}
		if c.cfg.IRQ.Read() == gpio.High || c.cfg.IRQ.WaitForEdge(c.t.PollInterval) {
			c.mu.Lock()
			c.receiveLocked()
			c.mu.Unlock()
		}
	}
}

func (c *Core) receiveLocked() {
	p, err := c.chip.Receive()
	switch {
	case err != nil:
		c.recoverLocked(err)
	case p.CRCError:
		c.stats.CRCErrors++
	case p.Data != nil:
		c.stats.RxFrames++
		select {
		case c.rxq <- radiolink.RxFrame{Data: p.Data, RSSI: p.RSSI, SNR: p.SNR, At: c.t.Now()}:
		default:
			c.stats.Dropped++
		}
	}
}

// transmit runs on the owner goroutine.
func (c *Core) transmit(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up {
		if err := c.recoverLocked(c.lastErr); err != nil {
			return fmt.Errorf("%s: %w (last error: %v)", c.cfg.Name, ErrLinkDown, err)
		}
	}
	if err := c.chip.Transmit(frame); err != nil {
		c.stats.Timeouts++
		c.markDownLocked(err)
		return fmt.Errorf("%s: %w", c.cfg.Name, err)
	}
	c.stats.TxFrames++
	return nil
}

// Transmit sends one frame and returns when TxDone came.
func (c *Core) Transmit(ctx context.Context, frame []byte) error {
	if len(frame) == 0 || len(frame) > c.MaxFrame() {
		return fmt.Errorf("%s: frame of %d bytes: a LoRa frame carries 1..%d bytes", c.cfg.Name, len(frame), c.MaxFrame())
	}
	req := txReq{frame: append([]byte(nil), frame...), res: make(chan error, 1)}
	select {
	case c.txq <- req:
	case <-c.closed:
		return fmt.Errorf("%s: %w", c.cfg.Name, radiolink.ErrDeviceClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Receive returns the next frame received intact.
func (c *Core) Receive(ctx context.Context) (radiolink.RxFrame, error) {
	select {
	case f := <-c.rxq:
		return f, nil
	case <-c.closed:
		return radiolink.RxFrame{}, fmt.Errorf("%s: %w", c.cfg.Name, radiolink.ErrDeviceClosed)
	case <-ctx.Done():
		return radiolink.RxFrame{}, ctx.Err()
	}
}

// MaxFrame is the LoRa maximum payload.
func (c *Core) MaxFrame() int { return airtime.MaxPayloadBytes }

// TimeOnAir implements radiolink.AirtimeModel.
func (c *Core) TimeOnAir(n int) time.Duration { return c.cfg.Modulation.TimeOnAir(n) }

// ChannelBusy implements radiolink.CarrierSense with the chip's
// instantaneous RSSI. LoRa signals below the noise floor do not show.
func (c *Core) ChannelBusy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up {
		return false
	}
	rssi, err := c.chip.RSSI()
	if err != nil {
		return false
	}
	return rssi > c.t.CarrierThresholdDBm
}

// LinkUp reports whether the chip is answering, and the last error if not.
func (c *Core) LinkUp() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up, c.lastErr
}

// Stats returns the driver's counters.
func (c *Core) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Close stops the owner goroutine and lets the chip stop (sleep or standby).
func (c *Core) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		<-c.done
		c.mu.Lock()
		c.chip.Stop(c.up)
		c.mu.Unlock()
	})
	return nil
}
