// Package sx126x drives an SX1262/SX1268 LoRa chip over SPI through its
// command interface (with the BUSY handshake and the DIO1 interrupt line),
// as a radiolink.Device: frames out with Transmit, frames in (with RSSI and
// SNR) from continuous receive.
//
// The device lifecycle (owner goroutine, queues, health check, reset and
// retry) is lora/chipdev's; this package holds the command code. Every
// command first waits for BUSY low (at most BusyTimeout). When the chip
// stops answering (BUSY stuck high, no TxDone within the timeout, a status
// byte of 0x00/0xFF, a chip not in RX when it should be) the link is
// reported down, RESET is pulsed and the chip re-initialised; while that
// fails, Transmit returns ErrLinkDown and re-initialisation is retried
// every RetryInterval.
//
// Time comes from Config.Now and Config.Sleep and from the pins' WaitForEdge
// timeouts, so tests drive the driver on an emulator's virtual clock.
package sx126x

import (
	"errors"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/chipdev"
	"github.com/ternmesh/tern/transports/radiolink"
)

// Opcodes.
const (
	opSetStandby       = 0x80
	opSetPacketType    = 0x8A
	opSetRfFrequency   = 0x86
	opSetModulation    = 0x8B
	opSetPacketParams  = 0x8C
	opSetBufferBase    = 0x8F
	opSetTx            = 0x83
	opSetRx            = 0x82
	opSetDioIrqParams  = 0x08
	opGetIrqStatus     = 0x12
	opClearIrqStatus   = 0x02
	opGetRxBufferState = 0x13
	opGetPacketStatus  = 0x14
	opSetTxParams      = 0x8E
	opSetPaConfig      = 0x95
	opCalibrate        = 0x89
	opCalibrateImage   = 0x98
	opSetDIO3AsTcxo    = 0x97
	opSetDIO2AsRFSw    = 0x9D
	opGetStatus        = 0xC0
	opGetRssiInst      = 0x15
	opWriteRegister    = 0x0D
	opReadRegister     = 0x1D
	opWriteBuffer      = 0x0E
	opReadBuffer       = 0x1E

	regSyncWord   = 0x0740
	regIQPolarity = 0x0736
	regTxMod      = 0x0889
	regTxClamp    = 0x08D8
)

// ErrLinkDown is returned (wrapped) while the chip is being recovered.
var ErrLinkDown = chipdev.ErrLinkDown

var bwCodes = map[int]byte{7800: 0x00, 10400: 0x08, 15600: 0x01, 20800: 0x09, 31250: 0x02,
	41700: 0x0A, 62500: 0x03, 125000: 0x04, 250000: 0x05, 500000: 0x06}

// Config sets up the radio.
type Config struct {
	FrequencyHz int64
	// Modulation: SF 5..12, bandwidth, CR, preamble, CRC, header mode. LDRO
	// follows airtime's rule (on when a symbol lasts more than 16 ms).
	Modulation airtime.Params
	// TxPowerDBm: -9..22; 0 means 14.
	TxPowerDBm int
	// SyncWord in the SX126x spelling: 0x1424 private networks (the default
	// when 0; an SX127x writes it as 0x12), 0x3444 LoRaWAN (SX127x 0x34).
	SyncWord uint16
	// TCXOVolts powers a TCXO from DIO3 (0: crystal). See hw.Board.
	TCXOVolts float64
	// DIO2RFSwitch lets DIO2 drive the board's RF switch.
	DIO2RFSwitch bool
	// BusyTimeout bounds each wait for BUSY low; 0 means 100 ms.
	BusyTimeout time.Duration
	// TxTimeout bounds the wait for TxDone; 0 means time on air * 1.5 + 100 ms.
	TxTimeout time.Duration
	// Timing: polling, recovery and health intervals, the carrier-sense
	// threshold (GetRssiInst), the clock and the logger (chipdev.Timing;
	// zero values mean 10 ms, 1 s, 10 s, -100 dBm, the wall clock,
	// slog.Default()).
	chipdev.Timing
}

// Pins are the chip's control lines.
type Pins struct {
	Reset gpio.PinOut // active low; nil if not wired
	Busy  gpio.PinIn  // BUSY, high while the chip cannot take a command
	DIO1  gpio.PinIn  // interrupt line, configured for rising edges
}

// Stats counts what the driver did.
type Stats = chipdev.Stats

// Device is an SX126x radio. It implements radiolink.Device,
// radiolink.AirtimeModel and radiolink.CarrierSense; its lifecycle methods
// (Transmit, Receive, Close, LinkUp, Stats, ChannelBusy...) are chipdev's.
type Device struct {
	*chipdev.Core
}

var _ radiolink.Device = (*Device)(nil)

// chip is the command code behind a Device; it implements chipdev.Chip.
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
		c.SyncWord = 0x1424
	}
	if c.BusyTimeout <= 0 {
		c.BusyTimeout = 100 * time.Millisecond
	}
	if err := c.Modulation.Validate(); err != nil {
		return fmt.Errorf("sx126x modulation: %w", err)
	}
	if _, err := bwCode(c.Modulation.BandwidthHz); err != nil {
		return err
	}
	if c.FrequencyHz < 150_000_000 || c.FrequencyHz > 960_000_000 {
		return fmt.Errorf("sx126x: frequency %d Hz outside 150-960 MHz", c.FrequencyHz)
	}
	if c.TxPowerDBm < -9 || c.TxPowerDBm > 22 {
		return fmt.Errorf("sx126x: TX power %d dBm: the SX1262 gives -9..22 dBm", c.TxPowerDBm)
	}
	return nil
}

func bwCode(hz int) (byte, error) {
	for b, code := range bwCodes {
		if hz-b < 100 && b-hz < 100 {
			return code, nil
		}
	}
	return 0, fmt.Errorf("sx126x: bandwidth %d Hz is not a LoRa bandwidth (7800..500000)", hz)
}

// Open resets and configures the chip, starts continuous receive and the
// owner goroutine.
func Open(conn spi.Conn, pins Pins, cfg Config) (*Device, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if pins.DIO1 == nil || pins.Busy == nil {
		return nil, errors.New("sx126x: DIO1 and BUSY pins are required")
	}
	t := cfg.timing()
	core, err := chipdev.Open(&chip{conn: conn, pins: pins, cfg: cfg},
		chipdev.Config{Name: "sx126x", IRQ: pins.DIO1, FrequencyHz: cfg.FrequencyHz, Modulation: cfg.Modulation, Timing: t})
	if err != nil {
		return nil, err
	}
	return &Device{Core: core}, nil
}

// Probe pulses reset (if wired), waits for BUSY low and reads the status
// byte and the sync word register (0x1424 after reset).
func Probe(conn spi.Conn, reset gpio.PinOut, busy gpio.PinIn, now func() time.Time, sleep func(time.Duration)) (Status, error) {
	cfg := Config{Timing: chipdev.Timing{Now: now, Sleep: sleep}, BusyTimeout: 100 * time.Millisecond}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = time.Sleep
	}
	d := &chip{conn: conn, pins: Pins{Reset: reset, Busy: busy}, cfg: cfg}
	d.pulseReset()
	return d.checkChip()
}

func (d *chip) pulseReset() {
	if d.pins.Reset == nil {
		return
	}
	d.pins.Reset.Out(gpio.Low)
	d.cfg.Sleep(time.Millisecond)
	d.pins.Reset.Out(gpio.High)
	d.cfg.Sleep(time.Millisecond)
}

func (d *chip) checkChip() (Status, error) {
	r, err := d.xfer([]byte{opGetStatus, 0})
	if err != nil {
		return Status{}, err
	}
	st, err := ParseStatus(r[1])
	if err != nil {
		return st, err
	}
	sw, err := d.readReg(regSyncWord, 2)
	if err != nil {
		return st, err
	}
	if (sw[0] == 0 && sw[1] == 0) || (sw[0] == 0xFF && sw[1] == 0xFF) {
		return st, fmt.Errorf("sync word register reads %02X%02X: %w", sw[0], sw[1], ErrNoChip)
	}
	return st, nil
}

// waitBusy waits for BUSY low, at most BusyTimeout.
func (d *chip) waitBusy() error {
	deadline := d.cfg.Now().Add(d.cfg.BusyTimeout)
	for d.pins.Busy.Read() == gpio.High {
		rem := deadline.Sub(d.cfg.Now())
		if rem <= 0 {
			return fmt.Errorf("sx126x: BUSY (%s) stuck high for %v: chip hung or BUSY pin wrong (check ?busy=)", d.pins.Busy, d.cfg.BusyTimeout)
		}
		d.pins.Busy.WaitForEdge(rem)
	}
	return nil
}

// xfer waits for BUSY low and runs one transaction.
func (d *chip) xfer(w []byte) ([]byte, error) {
	if err := d.waitBusy(); err != nil {
		return nil, err
	}
	r := make([]byte, len(w))
	if err := d.conn.Tx(w, r); err != nil {
		return nil, fmt.Errorf("sx126x: SPI command 0x%02X: %w", w[0], err)
	}
	return r, nil
}

func (d *chip) cmd(op byte, params ...byte) error {
	_, err := d.xfer(append([]byte{op}, params...))
	return err
}

func (d *chip) readReg(addr uint16, n int) ([]byte, error) {
	w := make([]byte, 4+n)
	w[0], w[1], w[2] = opReadRegister, byte(addr>>8), byte(addr)
	r, err := d.xfer(w)
	if err != nil {
		return nil, err
	}
	return r[4:], nil
}

type seq struct {
	d   *chip
	err error
}

func (s *seq) c(op byte, params ...byte) {
	if s.err == nil {
		s.err = s.d.cmd(op, params...)
	}
}

// setBits read-modify-writes one register.
func (s *seq) setBits(addr uint16, set, clr byte) {
	if s.err != nil {
		return
	}
	v, err := s.d.readReg(addr, 1)
	if err != nil {
		s.err = err
		return
	}
	s.c(opWriteRegister, byte(addr>>8), byte(addr), v[0]&^clr|set)
}

func imageCal(hz int64) [2]byte {
	switch {
	case hz > 900_000_000:
		return [2]byte{0xE1, 0xE9}
	case hz > 850_000_000:
		return [2]byte{0xD7, 0xDB}
	case hz > 770_000_000:
		return [2]byte{0xC1, 0xC5}
	case hz > 460_000_000:
		return [2]byte{0x75, 0x81}
	default:
		return [2]byte{0x6B, 0x6F}
	}
}

func tcxoCode(v float64) byte {
	levels := []float64{1.6, 1.7, 1.8, 2.2, 2.4, 2.7, 3.0, 3.3}
	for i, l := range levels {
		if v <= l+0.01 {
			return byte(i)
		}
	}
	return 7
}

func (d *chip) packetParams(s *seq, n int) {
	m := d.cfg.Modulation
	pre := m.Preamble
	if pre == 0 {
		pre = airtime.DefaultPreamble
	}
	var ih, crc byte
	if m.ImplicitHeader {
		ih = 1
	}
	if m.CRC {
		crc = 1
	}
	s.c(opSetPacketParams, byte(pre>>8), byte(pre), ih, byte(n), crc, 0)
	s.setBits(regIQPolarity, 0x04, 0) // errata: standard IQ
}

// Init follows the spec's order: reset, STDBY_RC, Calibrate,
// CalibrateImage, TCXO (recalibrating after it), packet type, sync word,
// DIO2 RF switch, frequency, PA and TX params, buffer base, modulation,
// packet params; then the IRQ routing and continuous RX.
func (d *chip) Init() error {
	d.pulseReset()
	if _, err := d.checkChip(); err != nil {
		return err
	}
	c := d.cfg
	m := c.Modulation
	s := &seq{d: d}
	s.c(opSetStandby, 0)
	s.c(opCalibrate, 0x7F)
	ic := imageCal(c.FrequencyHz)
	s.c(opCalibrateImage, ic[0], ic[1])
	if c.TCXOVolts > 0 {
		s.c(opSetDIO3AsTcxo, tcxoCode(c.TCXOVolts), 0x00, 0x01, 0x40) // 5 ms start-up
		s.c(opCalibrate, 0x7F)                                        // the first one ran without a clock
	}
	s.c(opSetPacketType, 1)
	s.c(opWriteRegister, byte(regSyncWord>>8), byte(regSyncWord&0xFF), byte(c.SyncWord>>8), byte(c.SyncWord))
	if c.DIO2RFSwitch {
		s.c(opSetDIO2AsRFSw, 1)
	}
	frf := uint64(c.FrequencyHz) << 25 / 32_000_000
	s.c(opSetRfFrequency, byte(frf>>24), byte(frf>>16), byte(frf>>8), byte(frf))
	s.c(opSetPaConfig, 0x04, 0x07, 0x00, 0x01)
	s.c(opSetTxParams, byte(int8(c.TxPowerDBm)), 0x04)
	s.setBits(regTxClamp, 0x1E, 0) // errata: TX clamp
	s.c(opSetBufferBase, 0, 0)
	bw, _ := bwCode(m.BandwidthHz)
	var ldro byte
	if m.LDRO() {
		ldro = 1
	}
	s.c(opSetModulation, byte(m.SF), bw, byte(m.CR), ldro)
	if bw == 0x06 {
		s.setBits(regTxMod, 0, 0x04) // errata: 500 kHz
	} else {
		s.setBits(regTxMod, 0x04, 0)
	}
	d.packetParams(s, airtime.MaxPayloadBytes)
	s.c(opSetDioIrqParams, byte(irqUsed>>8), byte(irqUsed&0xFF), byte(irqUsed>>8), byte(irqUsed&0xFF), 0, 0, 0, 0)
	s.c(opClearIrqStatus, 0xFF, 0xFF)
	s.c(opSetRx, 0xFF, 0xFF, 0xFF)
	return s.err
}

// Health checks the status byte says RX.
func (d *chip) Health() error {
	r, err := d.xfer([]byte{opGetStatus, 0})
	if err != nil {
		return err
	}
	st, err := ParseStatus(r[1])
	if err == nil && st.Mode != ModeRX {
		err = fmt.Errorf("chip in mode %d, not RX (reset or hung?)", st.Mode)
	}
	return err
}

// Receive reads and clears the IRQ status and returns a good packet.
func (d *chip) Receive() (chipdev.Packet, error) {
	r, err := d.xfer([]byte{opGetIrqStatus, 0, 0, 0})
	if err != nil {
		return chipdev.Packet{}, err
	}
	irq, err := ParseIrqStatus(r)
	if err != nil || irq == 0 {
		return chipdev.Packet{}, err
	}
	if err := d.cmd(opClearIrqStatus, byte(irq>>8), byte(irq)); err != nil {
		return chipdev.Packet{}, err
	}
	if irq&IrqRxDone == 0 {
		return chipdev.Packet{}, nil
	}
	if irq&(IrqCrcErr|IrqHeaderErr) != 0 {
		return chipdev.Packet{CRCError: true}, nil
	}
	r, err = d.xfer([]byte{opGetRxBufferState, 0, 0, 0})
	if err != nil {
		return chipdev.Packet{}, err
	}
	rb, err := ParseRxBufferStatus(r)
	if err != nil {
		return chipdev.Packet{}, nil
	}
	w := make([]byte, 3+rb.Length)
	w[0], w[1] = opReadBuffer, rb.Start
	r, err = d.xfer(w)
	if err != nil {
		return chipdev.Packet{}, err
	}
	data := append([]byte(nil), r[3:]...)
	r, err = d.xfer([]byte{opGetPacketStatus, 0, 0, 0, 0})
	if err != nil {
		return chipdev.Packet{}, err
	}
	rssi, snr, err := ParsePacketStatus(r)
	if err != nil {
		return chipdev.Packet{}, nil
	}
	return chipdev.Packet{Data: data, RSSI: rssi, SNR: snr}, nil
}

// Transmit sends one frame, waits for TxDone on DIO1 and returns to RX.
func (d *chip) Transmit(frame []byte) error {
	s := &seq{d: d}
	s.c(opSetStandby, 0)
	d.packetParams(s, len(frame))
	s.c(opWriteBuffer, append([]byte{0}, frame...)...)
	s.c(opSetTx, 0, 0, 0)
	if s.err != nil {
		return s.err
	}
	timeout := chipdev.TxTimeout(d.cfg.TxTimeout, d.cfg.Modulation, len(frame))
	if !chipdev.WaitHigh(d.pins.DIO1, timeout, d.cfg.Now) {
		return fmt.Errorf("no TxDone on DIO1 within %v: chip hung or DIO1 not wired (check ?irq=)", timeout)
	}
	r, err := d.xfer([]byte{opGetIrqStatus, 0, 0, 0})
	if err != nil {
		return err
	}
	irq, err := ParseIrqStatus(r)
	if err != nil {
		return err
	}
	if irq&IrqTxDone == 0 {
		return fmt.Errorf("DIO1 rose but the IRQ status is 0x%04X without TxDone", irq)
	}
	s.c(opClearIrqStatus, byte(irq>>8), byte(irq))
	d.packetParams(s, airtime.MaxPayloadBytes)
	s.c(opSetRx, 0xFF, 0xFF, 0xFF)
	return s.err
}

// RSSI is GetRssiInst in dBm.
func (d *chip) RSSI() (float64, error) {
	r, err := d.xfer([]byte{opGetRssiInst, 0, 0})
	if err != nil {
		return 0, err
	}
	return -float64(r[2]) / 2, nil
}

// Stop leaves a chip that answers in standby.
func (d *chip) Stop(up bool) {
	if up {
		d.cmd(opSetStandby, 0)
	}
}
