// Package sx127x drives an SX1276/77/78/79 (HopeRF RFM95/96/98) LoRa chip
// over SPI through its register interface, as a radiolink.Device: frames
// out with Transmit, frames in (with RSSI and SNR) from continuous receive.
//
// The device lifecycle (owner goroutine, queues, health check, reset and
// retry) is lora/chipdev's; this package holds the register code. The chip
// is reported down when it stops answering: no TxDone within the timeout,
// a wrong OpMode, a version register reading 0x00 or 0xFF. RESET is then
// pulsed and the chip re-initialised; while that fails, Transmit returns
// ErrLinkDown and re-initialisation is retried every RetryInterval.
//
// Time comes from Config.Now and Config.Sleep and from the pins' WaitForEdge
// timeouts, so tests drive the driver on an emulator's virtual clock.
package sx127x

import (
	"errors"
	"fmt"
	"math"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/chipdev"
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
var ErrLinkDown = chipdev.ErrLinkDown

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
	// Timing: polling, recovery and health intervals, the carrier-sense
	// threshold, the clock and the logger (chipdev.Timing; zero values
	// mean 10 ms, 1 s, 10 s, -100 dBm, the wall clock, slog.Default()).
	chipdev.Timing
}

// Pins are the chip's control lines.
type Pins struct {
	Reset gpio.PinOut // active-low reset; nil if not wired (no recovery by reset)
	DIO0  gpio.PinIn  // interrupt line, configured for rising edges
}

// Stats counts what the driver did.
type Stats = chipdev.Stats

// Device is an SX127x radio. It implements radiolink.Device,
// radiolink.AirtimeModel and radiolink.CarrierSense; its lifecycle methods
// (Transmit, Receive, Close, LinkUp, Stats, ChannelBusy...) are chipdev's.
type Device struct {
	*chipdev.Core
}

var _ radiolink.Device = (*Device)(nil)

// chip is the register code behind a Device; it implements chipdev.Chip.
type chip struct {
	conn spi.Conn
	pins Pins
	cfg  Config
}

func (c *Config) timing() chipdev.Timing {
	c.Timing = c.Timing.WithDefaults()
	return c.Timing
}

func (c *Config) defaults() error {
	if c.TxPowerDBm == 0 {
		c.TxPowerDBm = 14
	}
	if c.SyncWord == 0 {
		c.SyncWord = 0x12
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
	t := cfg.timing()
	core, err := chipdev.Open(&chip{conn: conn, pins: pins, cfg: cfg},
		chipdev.Config{Name: "sx127x", IRQ: pins.DIO0, FrequencyHz: cfg.FrequencyHz, Modulation: cfg.Modulation, Timing: t})
	if err != nil {
		return nil, err
	}
	return &Device{Core: core}, nil
}

// Probe pulses reset (if wired) and reads the version register.
func Probe(conn spi.Conn, reset gpio.PinOut, sleep func(time.Duration)) (byte, error) {
	if sleep == nil {
		sleep = time.Sleep
	}
	d := &chip{conn: conn, pins: Pins{Reset: reset}, cfg: Config{Timing: chipdev.Timing{Sleep: sleep}}}
	if reset != nil {
		d.pulseReset()
	}
	return d.checkVersion()
}

func (d *chip) pulseReset() {
	if d.pins.Reset == nil {
		return
	}
	d.pins.Reset.Out(gpio.Low)
	d.cfg.Sleep(time.Millisecond)
	d.pins.Reset.Out(gpio.High)
	d.cfg.Sleep(6 * time.Millisecond)
}

func (d *chip) checkVersion() (byte, error) {
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

func (d *chip) write(addr byte, data ...byte) error {
	w := append([]byte{addr | 0x80}, data...)
	if err := d.conn.Tx(w, make([]byte, len(w))); err != nil {
		return fmt.Errorf("sx127x: SPI write 0x%02X: %w", addr, err)
	}
	return nil
}

func (d *chip) readN(addr byte, n int) ([]byte, error) {
	w := make([]byte, n+1)
	w[0] = addr & 0x7F
	r := make([]byte, n+1)
	if err := d.conn.Tx(w, r); err != nil {
		return nil, fmt.Errorf("sx127x: SPI read 0x%02X: %w", addr, err)
	}
	return r[1:], nil
}

func (d *chip) read(addr byte) (byte, error) {
	b, err := d.readN(addr, 1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

type seq struct {
	d   *chip
	err error
}

func (s *seq) w(addr byte, data ...byte) {
	if s.err == nil {
		s.err = s.d.write(addr, data...)
	}
}

// Init resets and configures the chip and enters RX continuous.
func (d *chip) Init() error {
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
	return s.err
}

// Health checks the chip is still in RX continuous.
func (d *chip) Health() error {
	if v, err := d.read(regOpMode); err != nil || v != modeRxCont {
		return fmt.Errorf("OpMode 0x%02X, want RX continuous 0x85 (chip reset or hung?): %v", v, err)
	}
	return nil
}

// Receive reads and clears the IRQ flags and returns a good packet. SPI
// errors drop the packet without failing the link.
func (d *chip) Receive() (chipdev.Packet, error) {
	flags, err := d.read(regIrqFlags)
	if err != nil || flags == 0 {
		return chipdev.Packet{}, nil
	}
	if err := d.write(regIrqFlags, flags); err != nil {
		return chipdev.Packet{}, nil
	}
	if flags&IrqRxDone == 0 {
		return chipdev.Packet{}, nil
	}
	hdr, err := d.readN(regRxNbBytes, 1)
	if err != nil {
		return chipdev.Packet{}, nil
	}
	cur, err := d.read(regFifoRxCur)
	if err != nil {
		return chipdev.Packet{}, nil
	}
	q, err := d.readN(regPktSnr, 2)
	if err != nil {
		return chipdev.Packet{}, nil
	}
	st, err := ParseRxStatus(flags, hdr[0], cur, q[0], q[1], d.cfg.FrequencyHz >= 525_000_000)
	if errors.Is(err, ErrCRC) {
		return chipdev.Packet{CRCError: true}, nil
	}
	if err != nil {
		return chipdev.Packet{}, nil
	}
	if err := d.write(regFifoAddrPtr, st.Start); err != nil {
		return chipdev.Packet{}, nil
	}
	data, err := d.readN(regFifo, st.Length)
	if err != nil {
		return chipdev.Packet{}, nil
	}
	return chipdev.Packet{Data: data, RSSI: st.RSSI, SNR: st.SNR}, nil
}

// Transmit sends one frame, waits for TxDone on DIO0 and returns to RX.
func (d *chip) Transmit(frame []byte) error {
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
	timeout := chipdev.TxTimeout(d.cfg.TxTimeout, d.cfg.Modulation, len(frame))
	if !chipdev.WaitHigh(d.pins.DIO0, timeout, d.cfg.Now) {
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

// RSSI is the instantaneous RSSI (RegRssiValue) in dBm.
func (d *chip) RSSI() (float64, error) {
	v, err := d.read(regRssiValue)
	if err != nil {
		return 0, err
	}
	off := 157.0
	if d.cfg.FrequencyHz < 525_000_000 {
		off = 164
	}
	return float64(v) - off, nil
}

// Stop puts the chip to sleep.
func (d *chip) Stop(bool) {
	d.write(regOpMode, modeSleepLoRa)
}
