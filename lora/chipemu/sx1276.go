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

// SX1276 register addresses and values the emulator interprets.
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
	regPktRssi     = 0x1A
	regRssiValue   = 0x1B
	regModemCfg1   = 0x1D
	regModemCfg2   = 0x1E
	regPreambleMsb = 0x20
	regPreambleLsb = 0x21
	regPayloadLen  = 0x22
	regModemCfg3   = 0x26
	regSyncWord    = 0x39
	regDioMapping1 = 0x40
	regVersion     = 0x42

	opLongRange = 0x80
	modeSleep   = 0
	modeStandby = 1
	modeTx      = 3
	modeRxCont  = 5
	modeRxSngl  = 6
	modeCad     = 7

	irqRxDone   = 0x40
	irqCrcErr   = 0x20
	irqValidHdr = 0x10
	irqTxDone   = 0x08
	irqCadDone  = 0x04
	irqCadDet   = 0x01
)

// sx127xBandwidths maps ModemConfig1 BW codes 0-9 to airtime bandwidths.
var sx127xBandwidths = [10]int{7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000}

// SX1276 is a register-level SX1276 emulator.
type SX1276 struct {
	chipBase // Reset, CS, faults, violations, counters

	// DIO0 is the interrupt line.
	DIO0 *Pin

	regs    [0x80]byte
	fifo    [256]byte
	irq     byte
	ptrSet  bool // FifoAddrPtr written since the last packet arrived
	rxWrite byte // where the next received packet goes in RX continuous
	radio   *radiosim.Radio
	txGen   uint64
	sync16  uint16
	ldro    bool
}

// NewSX1276 adds an SX1276 named name to the bench.
func (b *Bench) NewSX1276(name string) *SX1276 {
	c := &SX1276{}
	c.initBase(b, name, c.resetLine, c.updateDIO)
	c.DIO0 = newPin(b.Clock, name+".DIO0", -1, gpio.Low)
	c.powerOn()
	return c
}

// SPI returns the chip's SPI connection.
func (c *SX1276) SPI() spi.Conn { return c.spiConn(c.tx) }

// Attach wires the chip to board b on opener o.
func (c *SX1276) Attach(o *Opener, b hw.Board) {
	o.Attach(b, c.SPI(), map[string]*Pin{hw.PinReset: c.Reset, hw.PinIRQ: c.DIO0, hw.PinCS: c.CS})
}

// Reg returns a register value (for tests).
func (c *SX1276) Reg(addr byte) byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[addr&0x7F]
}

func (c *SX1276) powerOn() {
	c.regs = [0x80]byte{}
	c.regs[regOpMode] = 0x09 // FSK, low-frequency mode, standby
	c.regs[regFrfMsb], c.regs[regFrfMsb+1], c.regs[regFrfMsb+2] = 0x6C, 0x80, 0x00
	c.regs[regPaConfig] = 0x4F
	c.regs[regFifoTxBase] = 0x80
	c.regs[regModemCfg1] = 0x72
	c.regs[regModemCfg2] = 0x70
	c.regs[regPreambleLsb] = 8
	c.regs[regPayloadLen] = 1
	c.regs[regModemCfg3] = 0x04
	c.regs[regSyncWord] = 0x12
	c.regs[regVersion] = 0x12
	c.regs[0x4D] = 0x84
	c.irq = 0
	c.ptrSet = true
	c.radio = nil
	c.txGen++
	c.updateDIO()
}

func (c *SX1276) resetLine(l gpio.Level) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l == gpio.Low {
		c.inReset = true
		c.powerOn()
		return
	}
	c.inReset = false
}

func (c *SX1276) mode() byte { return c.regs[regOpMode] & 0x07 }

// tx is one SPI transaction.
func (c *SX1276) tx(w, r []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busAnswers(w, r) {
		return
	}
	if c.inReset {
		c.viol.add(c.now(), VSPIInReset, "SPI access while RESET is held low")
		return
	}
	if c.csIgnored() {
		return
	}
	addr := w[0] & 0x7F
	write := w[0]&0x80 != 0
	fifoRead := false
	for i := 1; i < len(w); i++ {
		if write {
			c.writeReg(addr, w[i])
		} else {
			if addr == regFifo && !fifoRead {
				fifoRead = true
				if !c.ptrSet {
					c.viol.add(c.now(), VFifoPtrNotSet, "FIFO read after a packet arrived without setting FifoAddrPtr to FifoRxCurrentAddr")
				}
			}
			r[i] = c.readReg(addr)
		}
		if addr != regFifo {
			addr = (addr + 1) & 0x7F
		}
	}
}

func (c *SX1276) readReg(a byte) byte {
	switch a {
	case regFifo:
		if c.mode() == modeSleep {
			c.viol.add(c.now(), VFifoInSleep, "FIFO read in sleep mode")
			return 0
		}
		p := c.regs[regFifoAddrPtr]
		c.regs[regFifoAddrPtr] = p + 1
		return c.fifo[p]
	case regIrqFlags:
		return c.irq
	case regRssiValue:
		if c.radio != nil && c.radio.ChannelBusy() {
			return 157 - 80
		}
		return 157 - 125
	}
	return c.regs[a]
}

func (c *SX1276) writeReg(a, v byte) {
	lora := c.regs[regOpMode]&opLongRange != 0
	if !lora && a >= 0x0D && a <= 0x3F {
		c.viol.add(c.now(), VLoRaRegInFSK, "register 0x%02X written while in FSK mode (set LongRange in sleep first)", a)
	}
	switch a {
	case regFifo:
		if c.mode() == modeSleep {
			c.viol.add(c.now(), VFifoInSleep, "FIFO write in sleep mode")
			return
		}
		p := c.regs[regFifoAddrPtr]
		c.fifo[p] = v
		c.regs[regFifoAddrPtr] = p + 1
	case regOpMode:
		c.setOpMode(v)
	case regIrqFlags:
		c.irq &^= v
		c.updateDIO()
	case regFifoAddrPtr:
		c.regs[a] = v
		c.ptrSet = true
	case regVersion, regFifoRxCur, regRxNbBytes, regPktSnr, regPktRssi, regRssiValue:
		// read-only
	case regDioMapping1:
		c.regs[a] = v
		c.updateDIO()
	default:
		c.regs[a] = v
	}
}

func (c *SX1276) setOpMode(v byte) {
	old := c.regs[regOpMode]
	if (old^v)&opLongRange != 0 && old&0x07 != modeSleep {
		c.viol.add(c.now(), VLongRangeOutsideSleep, "OpMode 0x%02X changes LongRange while in mode %d: only possible in sleep, the write is ignored", v, old&0x07)
		v = v&^opLongRange | old&opLongRange
	}
	c.regs[regOpMode] = v
	newMode := v & 0x07
	if old&0x07 == modeTx && newMode != modeTx {
		c.txGen++ // leaving TX aborts the frame's TxDone
	}
	if v&opLongRange == 0 {
		return
	}
	switch newMode {
	case modeTx:
		if old&0x07 != modeTx {
			c.startTx()
		}
	case modeRxCont, modeRxSngl:
		if old&0x07 != newMode {
			c.rxWrite = c.regs[regFifoRxBase]
			c.radio, _ = c.currentRadio()
		}
	case modeCad:
		c.startCad()
	}
}

// params decodes the modulation registers.
func (c *SX1276) params() (int64, airtime.Params, bool) {
	frf := uint32(c.regs[regFrfMsb])<<16 | uint32(c.regs[regFrfMsb+1])<<8 | uint32(c.regs[regFrfMsb+2])
	freq := roundKHz(float64(frf) * 32e6 / (1 << 19))
	bwi := c.regs[regModemCfg1] >> 4
	if bwi > 9 {
		c.viol.add(c.now(), VBadModulation, "ModemConfig1 bandwidth code %d (0-9 valid)", bwi)
		return 0, airtime.Params{}, false
	}
	ldro := c.regs[regModemCfg3]&0x08 != 0
	p := airtime.Params{
		SF: int(c.regs[regModemCfg2] >> 4), BandwidthHz: sx127xBandwidths[bwi], CR: int(c.regs[regModemCfg1]>>1) & 7,
		Preamble:       int(c.regs[regPreambleMsb])<<8 | int(c.regs[regPreambleLsb]),
		ImplicitHeader: c.regs[regModemCfg1]&1 != 0, CRC: c.regs[regModemCfg2]&0x04 != 0, LowDataRateOptimize: &ldro,
	}
	if p.Preamble < 6 {
		c.viol.add(c.now(), VBadModulation, "preamble %d symbols: the SX1276 needs at least 6", p.Preamble)
		return 0, airtime.Params{}, false
	}
	if err := p.Validate(); err != nil || p.SF < 6 {
		c.viol.add(c.now(), VBadModulation, "%v (SF%d, CR %d)", err, p.SF, p.CR)
		return 0, airtime.Params{}, false
	}
	if p.SymbolTime() > 16*time.Millisecond && !ldro {
		c.viol.add(c.now(), VLDRO, "symbol time %v > 16 ms needs LowDataRateOptimize (ModemConfig3 bit 3)", p.SymbolTime())
	}
	return freq, p, true
}

func (c *SX1276) powerDBm() float64 {
	pa := c.regs[regPaConfig]
	if pa&0x80 != 0 {
		p := 2 + float64(pa&0x0F)
		if c.regs[0x4D]&0x07 == 0x07 {
			p += 3
		}
		return p
	}
	return float64(pa & 0x0F)
}

func (c *SX1276) currentRadio() (*radiosim.Radio, bool) {
	freq, p, ok := c.params()
	if !ok {
		return nil, false
	}
	c.ldro = p.LDRO()
	c.sync16 = uint16(c.regs[regSyncWord]&0xF0)<<8 | 0x0400 | uint16(c.regs[regSyncWord]&0x0F)<<4 | 0x04
	r, err := c.bench.radio(c.name, c, freq, p, c.powerDBm())
	if err != nil {
		c.viol.add(c.now(), VBadModulation, "%v", err)
		return nil, false
	}
	return r, true
}

func (c *SX1276) startTx() {
	if c.irq&irqTxDone != 0 {
		c.viol.add(c.now(), VIrqNotCleared, "TX started with TxDone still set in IrqFlags: clear it (write 0x08 to 0x12) after each TX")
	}
	n := int(c.regs[regPayloadLen])
	if n == 0 {
		c.viol.add(c.now(), VEmptyPayload, "TX with PayloadLength 0")
		c.regs[regOpMode] = c.regs[regOpMode]&^7 | modeStandby
		return
	}
	data := make([]byte, n)
	base := c.regs[regFifoTxBase]
	for i := range data {
		data[i] = c.fifo[byte(int(base)+i)]
	}
	r, ok := c.currentRadio()
	if !ok {
		return
	}
	c.radio = r
	if c.faults.NoIRQ {
		return // hung: the frame never leaves and TxDone never comes
	}
	done, err := r.Transmit(data)
	if err != nil {
		c.viol.add(c.now(), VOrder, "transmit: %v", err)
		return
	}
	c.txFrames++
	gen := c.txGen
	c.bench.Clock.At(done, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if gen != c.txGen || c.mode() != modeTx {
			return
		}
		c.irq |= irqTxDone
		c.regs[regOpMode] = c.regs[regOpMode]&^7 | modeStandby
		c.updateDIO()
	})
}

func (c *SX1276) startCad() {
	r, ok := c.currentRadio()
	if !ok {
		return
	}
	c.radio = r
	gen := c.txGen
	c.bench.Clock.AfterFunc(2*r.Params().SymbolTime(), func() {
		busy := r.ChannelBusy()
		c.mu.Lock()
		defer c.mu.Unlock()
		if gen != c.txGen || c.mode() != modeCad || c.faults.NoIRQ {
			return
		}
		c.irq |= irqCadDone
		if busy {
			c.irq |= irqCadDet
		}
		c.regs[regOpMode] = c.regs[regOpMode]&^7 | modeStandby
		c.updateDIO()
	})
}

func (c *SX1276) txMeta() airMeta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return airMeta{sync16: c.sync16, ldro: c.ldro}
}

func (c *SX1276) deliver(r *radiosim.Radio, f radiosim.Frame) {
	meta, ok := c.bench.senderMeta(f.From)
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.mode()
	if r != c.radio || c.regs[regOpMode]&opLongRange == 0 || (m != modeRxCont && m != modeRxSngl) || c.faults.NoIRQ || c.inReset {
		return
	}
	if !ok || meta.sync16 != c.sync16 || meta.ldro != c.ldro {
		return // different sync word or LDRO: not demodulated
	}
	n := len(f.Data)
	start := c.rxWrite
	for i, b := range f.Data {
		c.fifo[byte(int(start)+i)] = b
	}
	c.rxWrite = byte(int(start) + n)
	c.regs[regFifoRxCur] = start
	c.regs[regRxNbBytes] = byte(n)
	c.regs[regPktSnr] = byte(int8(math.Max(-128, math.Min(127, math.Round(f.SNR*4)))))
	c.regs[regPktRssi] = byte(math.Max(0, math.Min(255, math.Round(f.RSSI+157))))
	c.irq |= irqRxDone | irqValidHdr
	if c.faults.CRCErrors {
		c.irq |= irqCrcErr
	}
	c.ptrSet = false
	c.rxFrames++
	if m == modeRxSngl {
		c.regs[regOpMode] = c.regs[regOpMode]&^7 | modeStandby
	}
	c.updateDIO()
}

// updateDIO drives DIO0 from the IRQ flags and DioMapping1.
func (c *SX1276) updateDIO() {
	var bit byte
	switch c.regs[regDioMapping1] >> 6 {
	case 0:
		bit = irqRxDone
	case 1:
		bit = irqTxDone
	case 2:
		bit = irqCadDone
	}
	l := gpio.Low
	if c.irq&bit != 0 && !c.faults.NoIRQ && !c.faults.Unplugged {
		l = gpio.High
	}
	c.DIO0.set(l)
}
