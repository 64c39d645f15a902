package chipemu

import (
	"math"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"

	"github.com/ternmesh/tern/hw"
	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/radiosim"
)

// SX126x chip modes as reported in the status byte (bits 6:4).
const (
	m26Sleep    = 0
	m26StbyRC   = 2
	m26StbyXOSC = 3
	m26FS       = 4
	m26RX       = 5
	m26TX       = 6
)

// SX126x IRQ bits.
const (
	i26TxDone    = 1 << 0
	i26RxDone    = 1 << 1
	i26HeaderOK  = 1 << 4
	i26CrcErr    = 1 << 6
	i26CadDone   = 1 << 7
	i26CadDetect = 1 << 8
	i26Timeout   = 1 << 9
)

// sx126xBandwidths maps SetModulationParams BW codes to bandwidths.
var sx126xBandwidths = map[byte]int{0x00: 7800, 0x08: 10400, 0x01: 15600, 0x09: 20800, 0x02: 31250,
	0x0A: 41700, 0x03: 62500, 0x04: 125000, 0x05: 250000, 0x06: 500000}

// Processing times during which BUSY stays high after a command (virtual).
const (
	busyCommand   = 10 * time.Microsecond
	busyModeSet   = 100 * time.Microsecond
	busyCalibrate = 3500 * time.Microsecond
	busyStartup   = 3500 * time.Microsecond
)

// SX1262 is a command-level SX1262/SX1268 emulator.
type SX1262 struct {
	chipBase // Reset, CS, faults, violations, counters

	// NeedTCXO: the board's crystal is a TCXO powered from DIO3, so the
	// driver must send SetDIO3AsTcxoCtrl before calibrating.
	// NeedRFSwitch: the board's RF switch is driven by DIO2.
	needTCXO, needRFSwitch bool

	// DIO1 is the interrupt line; Busy is high while the chip cannot take
	// a command.
	DIO1, Busy *Pin

	mode      int
	cmdStatus int
	busyUntil time.Time
	busyGen   uint64
	lora      bool
	tcxoOn    bool
	rfSwitch  bool
	calErr    bool
	freqHz    int64
	mod       [4]byte
	modSet    bool
	pkt       [6]byte
	pktSet    bool
	txBase    byte
	rxBase    byte
	powerDBm  int8
	irq       uint16
	irqMask   uint16
	dio1Mask  uint16
	buf       [256]byte
	regs      map[uint16]byte
	rxLen     byte
	rxStart   byte
	rssiPkt   byte
	snrPkt    byte
	rxSingle  bool
	radio     *radiosim.Radio
	opGen     uint64
	ldro      bool
	sync16    uint16
	invertIQ  bool
}

// NewSX1262 adds an SX1262 to the bench. needTCXO and needRFSwitch describe
// the board around it (see hw.Board).
func (b *Bench) NewSX1262(name string, needTCXO, needRFSwitch bool) *SX1262 {
	c := &SX1262{needTCXO: needTCXO, needRFSwitch: needRFSwitch}
	c.initBase(b, name, c.resetLine, c.updateLines)
	c.DIO1 = newPin(b.Clock, name+".DIO1", -1, gpio.Low)
	c.Busy = newPin(b.Clock, name+".BUSY", -1, gpio.Low)
	c.Busy.settles = c.busySettles
	c.mu.Lock()
	c.powerOn()
	c.mu.Unlock()
	return c
}

// NewBoardSX1262 adds an SX1262 with the TCXO and RF-switch needs of board b.
func (b *Bench) NewBoardSX1262(name string, board hw.Board) *SX1262 {
	return b.NewSX1262(name, board.TCXOVolts > 0, board.DIO2RFSwitch)
}

// SPI returns the chip's SPI connection.
func (c *SX1262) SPI() spi.Conn { return c.spiConn(c.tx) }

// Attach wires the chip to board b on opener o.
func (c *SX1262) Attach(o *Opener, b hw.Board) {
	o.Attach(b, c.SPI(), map[string]*Pin{hw.PinReset: c.Reset, hw.PinIRQ: c.DIO1, hw.PinBusy: c.Busy, hw.PinCS: c.CS})
}

// Register returns a register value (for tests).
func (c *SX1262) Register(addr uint16) byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[addr]
}

func (c *SX1262) powerOn() {
	c.mode, c.cmdStatus = m26StbyRC, 0
	c.lora, c.tcxoOn, c.rfSwitch, c.calErr, c.modSet, c.pktSet = false, false, false, false, false, false
	c.irq, c.irqMask, c.dio1Mask = 0, 0, 0
	c.calErr = c.needTCXO // power-on calibration ran with the TCXO unpowered
	c.txBase, c.rxBase = 0, 0
	c.freqHz = 0
	c.radio = nil
	c.opGen++
	// Sync word 0x1424 (private), IQ polarity, errata registers; defaults [unverified] beyond the sync word.
	c.regs = map[uint16]byte{0x0740: 0x14, 0x0741: 0x24, 0x0736: 0x0D, 0x0889: 0x04, 0x08D8: 0xC8}
	c.setBusy(busyStartup)
}

// setBusy raises BUSY for d of virtual time.
func (c *SX1262) setBusy(d time.Duration) {
	c.busyGen++
	gen := c.busyGen
	c.busyUntil = c.now().Add(d)
	c.updateLines()
	c.bench.Clock.At(c.busyUntil, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if gen == c.busyGen {
			c.updateLines()
		}
	})
}

// busySettles reports when BUSY falls by itself: the end of a command's
// processing time (at most a few ms), unless the chip is stuck, in reset
// or asleep.
func (c *SX1262) busySettles() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.faults.BusyStuck || c.inReset || c.mode == m26Sleep || !c.now().Before(c.busyUntil) {
		return time.Time{}, false
	}
	return c.busyUntil, true
}

func (c *SX1262) busy() bool {
	return c.faults.BusyStuck || c.inReset || c.mode == m26Sleep || c.now().Before(c.busyUntil)
}

func (c *SX1262) updateLines() {
	b := gpio.Low
	if c.busy() && !c.faults.Unplugged {
		b = gpio.High
	}
	c.Busy.set(b)
	d := gpio.Low
	if c.irq&c.dio1Mask != 0 && !c.faults.NoIRQ && !c.faults.Unplugged {
		d = gpio.High
	}
	c.DIO1.set(d)
}

func (c *SX1262) resetLine(l gpio.Level) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l == gpio.Low {
		c.inReset = true
		c.powerOn()
		return
	}
	c.inReset = false
	c.setBusy(busyStartup)
}

func (c *SX1262) status() byte {
	return byte(c.mode&7)<<4 | byte(c.cmdStatus&7)<<1
}

// cmdLen is the exact length of fixed-size commands (opcode included).
var cmdLen = map[byte]int{
	0x80: 2, 0x8A: 2, 0x86: 5, 0x8F: 3, 0x83: 4, 0x82: 4, 0x08: 9, 0x12: 4, 0x02: 3,
	0x13: 4, 0x14: 5, 0x8E: 3, 0x95: 5, 0x89: 2, 0x98: 3, 0x97: 5, 0x9D: 2, 0xC0: 2,
	0x15: 3, 0x84: 2, 0x96: 2, 0x9F: 2, 0xA0: 2,
}

// tx is one SPI transaction (NSS low for its length).
func (c *SX1262) tx(w, r []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busAnswers(w, r) || c.csIgnored() {
		return
	}
	if c.mode == m26Sleep && !c.inReset && !c.faults.BusyStuck {
		c.mode = m26StbyRC // falling NSS wakes the chip; this command is lost
		c.setBusy(busyStartup)
		return
	}
	if c.busy() {
		c.viol.add(c.now(), VCommandWhileBusy, "command 0x%02X sent while BUSY is high: the chip ignores it", w[0])
		return
	}
	for i := 1; i < len(r); i++ {
		r[i] = c.status()
	}
	op := w[0]
	if n, ok := cmdLen[op]; ok && len(w) != n {
		c.viol.add(c.now(), VBadLength, "command 0x%02X with %d bytes, expected %d", op, len(w), n)
		c.cmdStatus = 4
		return
	}
	busyFor := busyCommand
	c.cmdStatus = 0
	switch op {
	case 0x80: // SetStandby
		c.leaveOp()
		c.mode = m26StbyRC
		if w[1] == 1 {
			c.mode = m26StbyXOSC
		}
	case 0x8A: // SetPacketType
		if !c.standby() {
			c.viol.add(c.now(), VNotStandby, "SetPacketType outside standby")
		}
		c.lora = w[1] == 1
		if !c.lora {
			c.viol.add(c.now(), VOrder, "packet type %d: only LoRa (1) is emulated", w[1])
		}
	case 0x86: // SetRfFrequency
		v := uint32(w[1])<<24 | uint32(w[2])<<16 | uint32(w[3])<<8 | uint32(w[4])
		c.freqHz = roundKHz(float64(v) * 32e6 / (1 << 25))
	case 0x8B: // SetModulationParams
		if len(w) < 5 || len(w) > 9 {
			c.viol.add(c.now(), VBadLength, "SetModulationParams with %d bytes", len(w))
			return
		}
		if !c.lora {
			c.viol.add(c.now(), VOrder, "SetModulationParams before SetPacketType(LoRa)")
		}
		copy(c.mod[:], w[1:5])
		c.modSet = true
	case 0x8C: // SetPacketParams
		if len(w) < 7 || len(w) > 10 {
			c.viol.add(c.now(), VBadLength, "SetPacketParams with %d bytes", len(w))
			return
		}
		if !c.lora {
			c.viol.add(c.now(), VOrder, "SetPacketParams before SetPacketType(LoRa)")
		}
		copy(c.pkt[:], w[1:7])
		c.pktSet = true
	case 0x8F:
		c.txBase, c.rxBase = w[1], w[2]
	case 0x08:
		c.irqMask = uint16(w[1])<<8 | uint16(w[2])
		c.dio1Mask = uint16(w[3])<<8 | uint16(w[4])
	case 0x12: // GetIrqStatus
		r[2], r[3] = byte(c.irq>>8), byte(c.irq)
	case 0x02:
		c.irq &^= uint16(w[1])<<8 | uint16(w[2])
	case 0x13:
		r[2], r[3] = c.rxLen, c.rxStart
	case 0x14:
		r[2], r[3], r[4] = c.rssiPkt, c.snrPkt, c.rssiPkt
	case 0x15:
		rssi := -125.0
		if c.radio != nil && c.radio.ChannelBusy() {
			rssi = -80
		}
		r[2] = byte(-rssi * 2)
	case 0x8E:
		c.powerDBm = int8(w[1])
	case 0x89: // Calibrate
		if c.mode != m26StbyRC {
			c.viol.add(c.now(), VNotStandby, "Calibrate outside STDBY_RC")
		}
		c.calErr = c.needTCXO && !c.tcxoOn // the TCXO is unpowered: XOSC calibration fails
		busyFor = busyCalibrate
	case 0x98:
		busyFor = busyCalibrate / 2
	case 0x97:
		c.tcxoOn = true
	case 0x9D:
		c.rfSwitch = w[1] == 1
	case 0x83:
		c.startTx()
		busyFor = busyModeSet
	case 0x82:
		c.startRx(uint32(w[1])<<16 | uint32(w[2])<<8 | uint32(w[3]))
		busyFor = busyModeSet
	case 0x0D: // WriteRegister
		if len(w) < 4 {
			c.viol.add(c.now(), VBadLength, "WriteRegister with %d bytes", len(w))
			return
		}
		a := uint16(w[1])<<8 | uint16(w[2])
		for i, v := range w[3:] {
			c.regs[a+uint16(i)] = v
		}
	case 0x1D: // ReadRegister: op aH aL NOP data...
		if len(w) < 5 {
			c.viol.add(c.now(), VBadLength, "ReadRegister with %d bytes", len(w))
			return
		}
		a := uint16(w[1])<<8 | uint16(w[2])
		for i := 4; i < len(w); i++ {
			r[i] = c.regs[a+uint16(i-4)]
		}
	case 0x0E: // WriteBuffer
		if len(w) < 3 {
			c.viol.add(c.now(), VBadLength, "WriteBuffer with %d bytes", len(w))
			return
		}
		for i, v := range w[2:] {
			c.buf[byte(int(w[1])+i)] = v
		}
	case 0x1E: // ReadBuffer: op offset NOP data...
		if len(w) < 4 {
			c.viol.add(c.now(), VBadLength, "ReadBuffer with %d bytes", len(w))
			return
		}
		for i := 3; i < len(w); i++ {
			r[i] = c.buf[byte(int(w[1])+i-3)]
		}
	case 0xC0, 0x96, 0x9F, 0xA0, 0x95:
	case 0x84: // SetSleep
		c.leaveOp()
		c.mode = m26Sleep
	default:
		c.viol.add(c.now(), VUnknownCommand, "opcode 0x%02X", op)
		c.cmdStatus = 4
		return
	}
	c.setBusy(busyFor)
}

func (c *SX1262) standby() bool { return c.mode == m26StbyRC || c.mode == m26StbyXOSC }

// leaveOp cancels a pending TX end or RX.
func (c *SX1262) leaveOp() { c.opGen++ }

func (c *SX1262) setIRQ(bits uint16) {
	c.irq |= bits & c.irqMask
	c.updateLines()
}

// params decodes the modulation and packet parameters.
func (c *SX1262) params() (airtime.Params, bool) {
	if !c.lora || !c.modSet || !c.pktSet || c.freqHz == 0 {
		c.viol.add(c.now(), VOrder, "TX/RX before packet type, frequency, modulation and packet parameters are all set")
		return airtime.Params{}, false
	}
	bw, ok := sx126xBandwidths[c.mod[1]]
	if !ok {
		c.viol.add(c.now(), VBadModulation, "bandwidth code 0x%02X", c.mod[1])
		return airtime.Params{}, false
	}
	ldro := c.mod[3] == 1
	p := airtime.Params{SF: int(c.mod[0]), BandwidthHz: bw, CR: int(c.mod[2]), Preamble: int(c.pkt[0])<<8 | int(c.pkt[1]),
		ImplicitHeader: c.pkt[2] == 1, CRC: c.pkt[4] == 1, LowDataRateOptimize: &ldro}
	if err := p.Validate(); err != nil || p.Preamble == 0 {
		c.viol.add(c.now(), VBadModulation, "%v (preamble %d)", err, p.Preamble)
		return airtime.Params{}, false
	}
	if p.SymbolTime() > 16*time.Millisecond && !ldro {
		c.viol.add(c.now(), VLDRO, "symbol time %v > 16 ms needs LDRO in SetModulationParams", p.SymbolTime())
	}
	return p, true
}

func (c *SX1262) currentRadio() (*radiosim.Radio, bool) {
	p, ok := c.params()
	if !ok {
		return nil, false
	}
	c.ldro = p.LDRO()
	c.sync16 = uint16(c.regs[0x0740])<<8 | uint16(c.regs[0x0741])
	c.invertIQ = c.pkt[5] == 1
	r, err := c.bench.radio(c.name, c, c.freqHz, p, float64(c.powerDBm))
	if err != nil {
		c.viol.add(c.now(), VBadModulation, "%v", err)
		return nil, false
	}
	return r, true
}

func (c *SX1262) startTx() {
	if c.irq&i26TxDone != 0 {
		c.viol.add(c.now(), VIrqNotCleared, "SetTx with TxDone still set: ClearIrqStatus after each TX")
	}
	if c.needRFSwitch && !c.rfSwitch {
		c.viol.add(c.now(), VRFSwitch, "SetTx without SetDIO2AsRfSwitchCtrl(1): this board's antenna switch stays on RX")
	}
	if c.calErr {
		c.viol.add(c.now(), VTCXO, "SetTx after calibrating without SetDIO3AsTcxoCtrl: this board's TCXO was unpowered, the oscillator is not calibrated")
		c.cmdStatus = 5
		return
	}
	n := int(c.pkt[3])
	if n == 0 {
		c.viol.add(c.now(), VEmptyPayload, "SetTx with payload length 0 in SetPacketParams")
		return
	}
	r, ok := c.currentRadio()
	if !ok {
		return
	}
	c.leaveOp()
	c.radio = r
	c.mode = m26TX
	if c.faults.NoIRQ {
		return
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = c.buf[byte(int(c.txBase)+i)]
	}
	done, err := r.Transmit(data)
	if err != nil {
		c.viol.add(c.now(), VOrder, "transmit: %v", err)
		return
	}
	c.txFrames++
	gen := c.opGen
	c.bench.Clock.At(done, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if gen != c.opGen || c.mode != m26TX {
			return
		}
		c.mode = m26StbyRC
		c.cmdStatus = 6
		c.setIRQ(i26TxDone)
	})
}

func (c *SX1262) startRx(timeout uint32) {
	if c.calErr {
		c.viol.add(c.now(), VTCXO, "SetRx after calibrating without SetDIO3AsTcxoCtrl: this board's TCXO was unpowered")
		c.cmdStatus = 5
		return
	}
	r, ok := c.currentRadio()
	if !ok {
		return
	}
	c.leaveOp()
	c.radio = r
	c.mode = m26RX
	c.rxSingle = timeout != 0xFFFFFF
	if timeout != 0 && timeout != 0xFFFFFF {
		gen := c.opGen
		c.bench.Clock.AfterFunc(time.Duration(timeout)*15625*time.Nanosecond, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if gen == c.opGen && c.mode == m26RX {
				c.mode = m26StbyRC
				c.setIRQ(i26Timeout)
			}
		})
	}
}

func (c *SX1262) txMeta() airMeta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return airMeta{sync16: c.sync16, ldro: c.ldro, invertIQ: c.invertIQ}
}

func (c *SX1262) deliver(r *radiosim.Radio, f radiosim.Frame) {
	meta, ok := c.bench.senderMeta(f.From)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r != c.radio || c.mode != m26RX || c.faults.NoIRQ || c.inReset {
		return
	}
	if !ok || meta.sync16 != c.sync16 || meta.ldro != c.ldro || meta.invertIQ != c.invertIQ {
		return
	}
	for i, b := range f.Data {
		c.buf[byte(int(c.rxBase)+i)] = b
	}
	c.rxLen, c.rxStart = byte(len(f.Data)), c.rxBase
	c.rssiPkt = byte(math.Max(0, math.Min(255, math.Round(-f.RSSI*2))))
	c.snrPkt = byte(int8(math.Max(-128, math.Min(127, math.Round(f.SNR*4)))))
	c.rxFrames++
	c.cmdStatus = 2
	if c.rxSingle {
		c.leaveOp()
		c.mode = m26StbyRC
	}
	bits := uint16(i26RxDone | i26HeaderOK)
	if c.faults.CRCErrors {
		bits |= i26CrcErr
	}
	c.setIRQ(bits)
}
