// Package chipemu emulates LoRa radio chips for driver tests: an SX1276
// at register level and an SX1262 at command level, each behind a fake
// periph spi.Conn with fake gpio pins (RESET, DIO0/DIO1 interrupt, BUSY,
// a hand-driven CS), attached to a lora/radiosim channel so that emulated
// chips hear each other with the exact LoRa time on air.
//
// The emulators follow the datasheet facts in specs/radio-interfaces.md and
// are strict: whatever the real chip would ignore or get wrong (LongRange
// changed outside sleep, a TX started with TxDone still set, the FIFO read
// without setting FifoAddrPtr, a command sent while BUSY is high, LDRO off
// when a symbol lasts more than 16 ms...) is recorded as a Violation, and
// driver tests assert there are none. Faults (BUSY stuck high, an interrupt
// that never fires, an unplugged chip reading 0x00 or 0xFF, CRC errors) can
// be injected at any time.
//
// # Time
//
// Chips live on the channel's virtual clock (radiosim.Clock). A Bench runs
// a pump goroutine that advances the virtual clock by a fixed step on every
// real tick (a fixed speed-up, 20x by default). Everything a driver waits
// for is expressed on that clock: the emulated pins interpret WaitForEdge
// timeouts as virtual durations, BUSY falls and TxDone rises at virtual
// instants, and Bench.Now and Bench.Sleep give drivers a virtual clock and
// sleep. So a driver's real timeout logic runs unchanged, a 165 ms frame
// takes about 8 ms of real time, and fault timeouts expire quickly. Frame
// contents, RSSI and SNR are deterministic; the exact virtual instant at
// which a driver acts depends on goroutine scheduling, within one pump step.
// One exception keeps commands cheap: a driver waiting for BUSY to fall at
// the end of a command (microseconds to 3.5 ms) moves the clock to that
// instant itself instead of waiting for the next pump step.
// The pump was preferred to letting every waiting driver advance the clock,
// which with two chips and several waiting goroutines on one clock makes
// time run as fast as the CPU spins and burns the shared cores.
package chipemu

import (
	"fmt"
	"sync"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/radiosim"
)

// Bench is a set of emulated chips on one radiosim channel with a pump that
// moves the virtual clock.
type Bench struct {
	Clock   *radiosim.Clock
	Channel *radiosim.Channel

	tick, step time.Duration

	mu     sync.Mutex
	radios map[string]*radiosim.Radio // by key
	owner  map[string]chipRadio       // radio name -> chip
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

type chipRadio interface {
	txMeta() airMeta
	deliver(r *radiosim.Radio, f radiosim.Frame)
}

// airMeta is what the air carries beside the payload and radiosim does not
// model: a receiver only decodes frames with its sync word, LDRO and IQ.
type airMeta struct {
	sync16   uint16 // SX126x spelling: SX127x 0xXY is 0xX4Y4
	ldro     bool
	invertIQ bool
}

// NewBench returns a bench on a new channel starting at start. speedup is
// virtual time per real time (0 means 20).
func NewBench(start time.Time, cfg radiosim.Config, speedup int) *Bench {
	if speedup <= 0 {
		speedup = 20
	}
	c := radiosim.NewClock(start)
	return &Bench{
		Clock: c, Channel: radiosim.NewChannel(c, cfg),
		tick: time.Millisecond, step: time.Duration(speedup) * time.Millisecond,
		radios: map[string]*radiosim.Radio{}, owner: map[string]chipRadio{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start starts the pump. Call Close when done.
func (b *Bench) Start() {
	go func() {
		defer close(b.done)
		t := time.NewTicker(b.tick)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.Clock.Advance(b.step)
			}
		}
	}()
}

// Close stops the pump (if started). Drivers waiting on emulated pins must
// be closed first: their waits need the clock to move.
func (b *Bench) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	select {
	case <-b.done:
	case <-time.After(time.Second):
	}
}

// Now returns the virtual time (give it to drivers as their clock).
func (b *Bench) Now() time.Time { return b.Clock.Now() }

// Sleep blocks until the virtual clock has moved d (give it to drivers as
// their sleep). It returns early if the bench is closed.
func (b *Bench) Sleep(d time.Duration) {
	ch := make(chan struct{})
	t := b.Clock.AfterFunc(d, func() { close(ch) })
	select {
	case <-ch:
	case <-b.stop:
		t.Stop()
	}
}

// radio returns the radiosim radio of a chip for one frequency and
// modulation, joining it to the channel the first time. Radios are never
// removed: a chip that changes settings gets a new one.
func (b *Bench) radio(chip string, c chipRadio, freqHz int64, p airtime.Params, powerDBm float64) (*radiosim.Radio, error) {
	key := fmt.Sprintf("%s@%d/%s/pre%d/crc%v/ih%v/ldro%v", chip, freqHz, p, p.Preamble, p.CRC, p.ImplicitHeader, p.LDRO())
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.radios[key]; ok {
		return r, nil
	}
	var r *radiosim.Radio
	r, err := b.Channel.AddRadio(radiosim.RadioConfig{Name: key, Params: p, FrequencyHz: freqHz, TxPowerDBm: powerDBm,
		OnReceive: func(f radiosim.Frame) { c.deliver(r, f) }})
	if err != nil {
		return nil, err
	}
	b.radios[key] = r
	b.owner[key] = c
	return r, nil
}

// senderMeta returns the air metadata of the chip that owns radio name.
func (b *Bench) senderMeta(name string) (airMeta, bool) {
	b.mu.Lock()
	c, ok := b.owner[name]
	b.mu.Unlock()
	if !ok {
		return airMeta{}, false
	}
	return c.txMeta(), true
}

// roundKHz maps a synthesiser frequency to the nearest kHz: the channel
// compares centre frequencies exactly, while the SX127x (61 Hz steps) and
// SX126x (0.95 Hz steps) land a few Hz apart for the same channel. Real
// receivers tolerate offsets of a quarter of the bandwidth.
func roundKHz(hz float64) int64 { return int64(hz/1000+0.5) * 1000 }

// Violation is a protocol error a driver made that the real chip would
// punish (ignore the write, misbehave, or be damaged).
type Violation struct {
	At     time.Time
	Code   string
	Detail string
}

func (v Violation) String() string { return v.Code + ": " + v.Detail }

// Violation codes.
const (
	VLongRangeOutsideSleep = "longrange-outside-sleep"
	VIrqNotCleared         = "irq-not-cleared-before-tx"
	VFifoPtrNotSet         = "fifo-read-without-fifoaddrptr"
	VFifoInSleep           = "fifo-access-in-sleep"
	VLoRaRegInFSK          = "lora-register-in-fsk-mode"
	VCommandWhileBusy      = "command-while-busy"
	VUnknownCommand        = "unknown-command"
	VBadLength             = "bad-command-length"
	VNotStandby            = "command-needs-standby"
	VOrder                 = "command-order"
	VLDRO                  = "ldro-required"
	VBadModulation         = "bad-modulation"
	VEmptyPayload          = "empty-payload"
	VSPIInReset            = "spi-during-reset"
	VNoCS                  = "spi-without-cs"
	VTCXO                  = "tcxo-not-enabled"
	VRFSwitch              = "rf-switch-not-configured"
)

// Faults are injected misbehaviours of a chip or its wiring.
type Faults struct {
	BusyStuck bool // SX126x BUSY stays high: no command is accepted
	NoIRQ     bool // the chip hangs: TX never ends, nothing is received, no interrupt
	Unplugged bool // nothing on the bus: MISO reads UnpluggedByte
	// UnpluggedByte is what an unplugged bus reads: 0x00 (pulled down) or 0xFF.
	UnpluggedByte byte
	CRCErrors     bool // every received frame has a payload CRC error
}

// violations is the shared violation log of a chip.
type violations struct {
	list []Violation
}

func (v *violations) add(at time.Time, code, format string, args ...any) {
	v.list = append(v.list, Violation{At: at, Code: code, Detail: fmt.Sprintf(format, args...)})
}
