// Package sx127x drives an SX1276/77/78/79 (HopeRF RFM95/96/98) LoRa chip
// over SPI through its register interface, as a radiolink.Device: frames
// out with Transmit, frames in (with RSSI and SNR) from continuous receive.
//
// One goroutine owns the chip and its DIO0 interrupt line: it serves
// transmit requests and reads received packets. When the chip stops
// answering (no TxDone within the timeout, a wrong OpMode, a version
// register reading 0x00 or 0xFF) the link is reported down, RESET is pulsed
// and the chip is re-initialised; while that fails, Transmit returns
// ErrLinkDown and re-initialisation is retried every RetryInterval.
//
// Time comes from Config.Now and Config.Sleep and from the pins' WaitForEdge
// timeouts, so tests drive the driver on an emulator's virtual clock.
package sx127x

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/transports/radiolink"
)

// Registers used by the driver.
const (
	regFifo        = 0x00
	regOpMode      = 0x01
	regFrfMsb      = 0x06
	regPaConfig    = 0x09
	regFifoAddrPtr = 0x0D
	regFifoTxBase  = 0x0E
	regFifoRxBase  = 0x0F
	regFifoRxCur   = 0x10
	regIrqFlags    = 0x12
	regRxNbBytes   = 0x13
	regPktSnr      = 0x19
	regRssiValue   = 0x1B
	regModemCfg1   = 0x1D
	regModemCfg2   = 0x1E
	regPreambleMsb = 0x20
	regPayloadLen  = 0x22
	regModemCfg3   = 0x26
	regDetectOpt   = 0x31
	regDetectThr   = 0x37
	regSyncWord    = 0x39
	regDioMapping1 = 0x40
	regVersion     = 0x42
	regPaDac       = 0x4D

	modeSleepFSK  = 0x00
	modeSleepLoRa = 0x80
	modeStandby   = 0x81
	modeTx        = 0x83
	modeRxCont    = 0x85

	// ChipVersion is RegVersion of an SX1276.
	ChipVersion = 0x12
)

// ErrLinkDown is returned (wrapped) while the chip is being recovered.
var ErrLinkDown = errors.New("radio link down: the chip stopped answering and is being reset")

// ErrNoChip is returned (wrapped) when the version register reads 0x00 or 0xFF.
var ErrNoChip = errors.New("no chip answers on the SPI bus: check the HAT is seated and the board name is right")

var bandwidths = [10]int{7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000}

// Config sets up the radio.
type Config struct {
	FrequencyHz int64
	// Modulation: SF 6..12 (SF6 needs ImplicitHeader), bandwidth, CR,
	// preamble, CRC. LDRO follows airtime's rule (on when a symbol lasts
	// more than 16 ms) unless forced.
	Modulation airtime.Params
	// TxPowerDBm on PA_BOOST, 2..20; 0 means 14.
	TxPowerDBm int
	// SyncWord: 0x12 private networks (the default when 0), 0x34 LoRaWAN.
	SyncWord byte
	// TxTimeout bounds the wait for TxDone; 0 means time on air * 1.5 + 100 ms.
	TxTimeout time.Duration
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

// Pins are the chip's control lines.
type Pins struct {
	Reset gpio.PinOut // active-low reset; nil if not wired (no recovery by reset)
	DIO0  gpio.PinIn  // interrupt line, configured for rising edges
}

// Stats counts what the driver did.
type Stats struct {
	TxFrames, RxFrames, CRCErrors, Dropped, Timeouts, Resets int
}

// Device is an SX127x radio. It implements radiolink.Device,
// radiolink.AirtimeModel and radiolink.CarrierSense.
type Device struct {
	conn spi.Conn
	pins Pins
	cfg  Config
	log  *slog.Logger

	mu         sync.Mutex // SPI access and the fields below
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

var _ radiolink.Device = (*Device)(nil)

func (c *Config) defaults() error {
	if c.TxPowerDBm == 0 {
		c.TxPowerDBm = 14
	}
	if c.SyncWord == 0 {
		c.SyncWord = 0x12
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 10 * time.Millisecond
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 10 * time.Second
	}
	if c.CarrierThresholdDBm == 0 {
		c.CarrierThresholdDBm = -100
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = time.Sleep
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if err := c.Modulation.Validate(); err != nil {
		return fmt.Errorf("sx127x modulation: %w", err)
	}
	if c.Modulation.SF < 6 || (c.Modulation.SF == 6 && !c.Modulation.ImplicitHeader) {
		return fmt.Errorf("sx127x: SF%d: the SX127x supports SF7-SF12, and SF6 only with an implicit header", c.Modulation.SF)
	}
	if _, err := bwCode(c.Modulation.BandwidthHz); err != nil {
		return err
	}
	if c.FrequencyHz < 137_000_000 || c.FrequencyHz > 1_020_000_000 {
		return fmt.Errorf("sx127x: frequency %d Hz outside 137-1020 MHz", c.FrequencyHz)
	}
	if c.TxPowerDBm < 2 || c.TxPowerDBm > 20 {
		return fmt.Errorf("sx127x: TX power %d dBm: PA_BOOST gives 2..20 dBm", c.TxPowerDBm)
	}
	return nil
}

func bwCode(hz int) (byte, error) {
	for i, b := range bandwidths {
		if math.Abs(float64(hz-b)) < 100 {
			return byte(i), nil
		}
	}
	return 0, fmt.Errorf("sx127x: bandwidth %d Hz: use one of %v", hz, bandwidths)
}

// Open resets and configures the chip, starts continuous receive and the
// owner goroutine. It fails (with ErrNoChip for 0x00/0xFF) if the chip does
// not answer as an SX1276.
func Open(conn spi.Conn, pins Pins, cfg Config) (*Device, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if pins.DIO0 == nil {
		return nil, errors.New("sx127x: DIO0 pin missing: the driver needs the interrupt line")
	}
	d := &Device{conn: conn, pins: pins, cfg: cfg, log: cfg.Logger.With("radio", "sx127x"),
		txq: make(chan txReq), rxq: make(chan radiolink.RxFrame, 32),
		closed: make(chan struct{}), done: make(chan struct{})}
	d.mu.Lock()
	err := d.initLocked()
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	go d.loop()
	return d, nil
}

// Probe pulses reset (if wired) and reads the version register.
func Probe(conn spi.Conn, reset gpio.PinOut, sleep func(time.Duration)) (byte, error) {
	if sleep == nil {
		sleep = time.Sleep
	}
	d := &Device{conn: conn, pins: Pins{Reset: reset}, cfg: Config{Sleep: sleep}}
	if reset != nil {
		d.pulseReset()
	}
	return d.checkVersion()
}

func (d *Device) pulseReset() {
	if d.pins.Reset == nil {
		return
	}
	d.pins.Reset.Out(gpio.Low)
	d.cfg.Sleep(time.Millisecond)
	d.pins.Reset.Out(gpio.High)
	d.cfg.Sleep(6 * time.Millisecond)
}

func (d *Device) checkVersion() (byte, error) {
	v, err := d.read(regVersion)
	if err != nil {
		return 0, err
	}
	switch {
	case v == 0x00 || v == 0xFF:
		return v, fmt.Errorf("version register 0x42 reads 0x%02X: %w", v, ErrNoChip)
	case v != ChipVersion:
		return v, fmt.Errorf("version register 0x42 reads 0x%02X, an SX1276 reads 0x12 (0x22 is an SX1272): wrong chip or board name", v)
	}
	return v, nil
}

func (d *Device) write(addr byte, data ...byte) error {
	w := append([]byte{addr | 0x80}, data...)
	if err := d.conn.Tx(w, make([]byte, len(w))); err != nil {
		return fmt.Errorf("sx127x: SPI write 0x%02X: %w", addr, err)
	}
	return nil
}

func (d *Device) readN(addr byte, n int) ([]byte, error) {
	w := make([]byte, n+1)
	w[0] = addr & 0x7F
	r := make([]byte, n+1)
	if err := d.conn.Tx(w, r); err != nil {
		return nil, fmt.Errorf("sx127x: SPI read 0x%02X: %w", addr, err)
	}
	return r[1:], nil
}

func (d *Device) read(addr byte) (byte, error) {
	b, err := d.readN(addr, 1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

type seq struct {
	d   *Device
	err error
}

func (s *seq) w(addr byte, data ...byte) {
	if s.err == nil {
		s.err = s.d.write(addr, data...)
	}
}

// initLocked resets and configures the chip and enters RX continuous.
func (d *Device) initLocked() error {
	d.pulseReset()
	if _, err := d.checkVersion(); err != nil {
		return err
	}
	c := d.cfg
	m := c.Modulation
	s := &seq{d: d}
	s.w(regOpMode, modeSleepFSK)  // sleep first: LongRange only changes in sleep
	s.w(regOpMode, modeSleepLoRa) // then LoRa, still asleep
	if s.err != nil {
		return s.err
	}
	if v, err := d.read(regOpMode); err != nil || v != modeSleepLoRa {
		return fmt.Errorf("sx127x: OpMode reads 0x%02X after selecting LoRa sleep (want 0x80): %v", v, err)
	}
	frf := uint64(c.FrequencyHz) << 19 / 32_000_000
	s.w(regFrfMsb, byte(frf>>16), byte(frf>>8), byte(frf))
	s.w(regFifoTxBase, 0)
	s.w(regFifoRxBase, 0)
	bw, _ := bwCode(m.BandwidthHz)
	var ih, crc, ldro byte
	if m.ImplicitHeader {
		ih = 1
	}
	if m.CRC {
		crc = 0x04
	}
	if m.LDRO() {
		ldro = 0x08
	}
	s.w(regModemCfg1, bw<<4|byte(m.CR)<<1|ih)
	s.w(regModemCfg2, byte(m.SF)<<4|crc)
	s.w(regModemCfg3, ldro|0x04) // AGC auto on
	if m.SF == 6 {
		s.w(regDetectOpt, 0xC5)
		s.w(regDetectThr, 0x0C)
	} else {
		s.w(regDetectOpt, 0xC3)
		s.w(regDetectThr, 0x0A)
	}
	pre := m.Preamble
	if pre == 0 {
		pre = airtime.DefaultPreamble
	}
	s.w(regPreambleMsb, byte(pre>>8), byte(pre))
	s.w(regSyncWord, c.SyncWord)
	p := c.TxPowerDBm
	if p > 17 {
		s.w(regPaDac, 0x87)
		p -= 3
	} else {
		s.w(regPaDac, 0x84)
	}
	s.w(regPaConfig, 0x80|byte(p-2))
	s.w(regOpMode, modeStandby)
	s.w(regIrqFlags, 0xFF)
	s.w(regDioMapping1, 0x00)
	s.w(regOpMode, modeRxCont)
	if s.err != nil {
		return s.err
	}
	d.nextHealth = c.Now().Add(c.HealthInterval)
	if !d.up {
		d.log.Info("sx127x link up", "freq_hz", c.FrequencyHz, "modulation", m.String(), "ldro", m.LDRO())
	}
	d.up, d.lastErr = true, nil
	return nil
}

// markDownLocked reports the link down; the owner goroutine resets and
// re-initialises the chip on its next turn, so Transmit returns at once.
func (d *Device) markDownLocked(cause error) {
	if d.up {
		d.log.Warn("sx127x link down: resetting the chip", "err", cause)
	}
	d.up, d.lastErr, d.nextRetry = false, cause, d.cfg.Now()
}

// recoverLocked marks the link down (if up), pulses reset and
// re-initialises. It returns the init error.
func (d *Device) recoverLocked(cause error) error {
	if d.up {
		d.log.Warn("sx127x link down: resetting the chip", "err", cause)
	}
	d.up, d.lastErr = false, cause
	d.stats.Resets++
	if err := d.initLocked(); err != nil {
		d.lastErr = err
		d.nextRetry = d.cfg.Now().Add(d.cfg.RetryInterval)
		return err
	}
	return nil
}

func (d *Device) loop() {
	defer close(d.done)
	for {
		select {
		case <-d.closed:
			return
		case req := <-d.txq:
			req.res <- d.transmit(req.frame)
			continue
		default:
		}
		d.mu.Lock()
		up := d.up
		now := d.cfg.Now()
		if !up && !now.Before(d.nextRetry) {
			d.recoverLocked(d.lastErr)
		} else if up && !now.Before(d.nextHealth) {
			d.nextHealth = now.Add(d.cfg.HealthInterval)
			if v, err := d.read(regOpMode); err != nil || v != modeRxCont {
				d.recoverLocked(fmt.Errorf("health check: OpMode 0x%02X, want RX continuous 0x85 (chip reset or hung?): %v", v, err))
			}
		}
		d.mu.Unlock()
		if !up {
			d.cfg.Sleep(d.cfg.PollInterval)
			continue
		}
		if d.pins.DIO0.Read() == gpio.High || d.pins.DIO0.WaitForEdge(d.cfg.PollInterval) {
			d.mu.Lock()
			d.receiveLocked()
			d.mu.Unlock()
		}
	}
}

// receiveLocked reads and clears the IRQ flags and queues a good packet.
func (d *Device) receiveLocked() {
	flags, err := d.read(regIrqFlags)
	if err != nil || flags == 0 {
		return
	}
	if err := d.write(regIrqFlags, flags); err != nil {
		return
	}
	if flags&IrqRxDone == 0 {
		return
	}
	hdr, err := d.readN(regRxNbBytes, 1)
	if err != nil {
		return
	}
	cur, err := d.read(regFifoRxCur)
	if err != nil {
		return
	}
	q, err := d.readN(regPktSnr, 2)
	if err != nil {
		return
	}
	st, err := ParseRxStatus(flags, hdr[0], cur, q[0], q[1], d.cfg.FrequencyHz >= 525_000_000)
	if errors.Is(err, ErrCRC) {
		d.stats.CRCErrors++
		return
	}
	if err != nil {
		return
	}
	if err := d.write(regFifoAddrPtr, st.Start); err != nil {
		return
	}
	data, err := d.readN(regFifo, st.Length)
	if err != nil {
		return
	}
	d.stats.RxFrames++
	select {
	case d.rxq <- radiolink.RxFrame{Data: data, RSSI: st.RSSI, SNR: st.SNR, At: d.cfg.Now()}:
	default:
		d.stats.Dropped++
	}
}

// transmit runs on the owner goroutine.
func (d *Device) transmit(frame []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.up {
		if err := d.recoverLocked(d.lastErr); err != nil {
			return fmt.Errorf("sx127x: %w (last error: %v)", ErrLinkDown, err)
		}
	}
	err := d.txLocked(frame)
	if err != nil {
		d.stats.Timeouts++
		d.markDownLocked(err)
		return fmt.Errorf("sx127x: %w", err)
	}
	d.stats.TxFrames++
	return nil
}

func (d *Device) txLocked(frame []byte) error {
	s := &seq{d: d}
	s.w(regOpMode, modeStandby)
	s.w(regFifoTxBase, 0)
	s.w(regFifoAddrPtr, 0)
	s.w(regFifo, frame...)
	s.w(regPayloadLen, byte(len(frame)))
	s.w(regDioMapping1, 0x40) // DIO0 = TxDone
	s.w(regOpMode, modeTx)
	if s.err != nil {
		return s.err
	}
	timeout := d.cfg.TxTimeout
	if timeout <= 0 {
		toa := d.cfg.Modulation.TimeOnAir(len(frame))
		timeout = toa + toa/2 + 100*time.Millisecond
	}
	if !d.waitHigh(d.pins.DIO0, timeout) {
		return fmt.Errorf("no TxDone on DIO0 within %v: chip hung or DIO0 not wired (check the irq pin)", timeout)
	}
	flags, err := d.read(regIrqFlags)
	if err != nil {
		return err
	}
	if flags&IrqTxDone == 0 {
		return fmt.Errorf("DIO0 rose but IrqFlags reads 0x%02X without TxDone", flags)
	}
	s.w(regIrqFlags, flags) // clear TxDone (and anything else set)
	s.w(regDioMapping1, 0x00)
	s.w(regOpMode, modeRxCont)
	return s.err
}

// waitHigh waits for pin to read high, at most timeout on the driver's clock.
func (d *Device) waitHigh(pin gpio.PinIn, timeout time.Duration) bool {
	deadline := d.cfg.Now().Add(timeout)
	for pin.Read() != gpio.High {
		rem := deadline.Sub(d.cfg.Now())
		if rem <= 0 {
			return false
		}
		pin.WaitForEdge(rem)
	}
	return true
}

// Transmit sends one frame and returns when TxDone came.
func (d *Device) Transmit(ctx context.Context, frame []byte) error {
	if len(frame) == 0 || len(frame) > d.MaxFrame() {
		return fmt.Errorf("sx127x: frame of %d bytes: a LoRa frame carries 1..%d bytes", len(frame), d.MaxFrame())
	}
	req := txReq{frame: append([]byte(nil), frame...), res: make(chan error, 1)}
	select {
	case d.txq <- req:
	case <-d.closed:
		return fmt.Errorf("sx127x: %w", radiolink.ErrDeviceClosed)
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
func (d *Device) Receive(ctx context.Context) (radiolink.RxFrame, error) {
	select {
	case f := <-d.rxq:
		return f, nil
	case <-d.closed:
		return radiolink.RxFrame{}, fmt.Errorf("sx127x: %w", radiolink.ErrDeviceClosed)
	case <-ctx.Done():
		return radiolink.RxFrame{}, ctx.Err()
	}
}

// MaxFrame is the LoRa maximum payload.
func (d *Device) MaxFrame() int { return airtime.MaxPayloadBytes }

// TimeOnAir implements radiolink.AirtimeModel.
func (d *Device) TimeOnAir(n int) time.Duration { return d.cfg.Modulation.TimeOnAir(n) }

// ChannelBusy implements radiolink.CarrierSense with the instantaneous
// RSSI (RegRssiValue). LoRa signals below the noise floor do not show.
func (d *Device) ChannelBusy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.up {
		return false
	}
	v, err := d.read(regRssiValue)
	if err != nil {
		return false
	}
	off := 157.0
	if d.cfg.FrequencyHz < 525_000_000 {
		off = 164
	}
	return float64(v)-off > d.cfg.CarrierThresholdDBm
}

// LinkUp reports whether the chip is answering, and the last error if not.
func (d *Device) LinkUp() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.up, d.lastErr
}

// Stats returns the driver's counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Close stops the owner goroutine and puts the chip to sleep.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		close(d.closed)
		<-d.done
		d.mu.Lock()
		d.write(regOpMode, modeSleepLoRa)
		d.mu.Unlock()
	})
	return nil
}
