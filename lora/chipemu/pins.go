package chipemu

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"github.com/ternmesh/tern/hw"
	"github.com/ternmesh/tern/lora/radiosim"
)

// Pin is an emulated GPIO. Inputs (DIO, BUSY) are driven by the chip;
// outputs (RESET, CS) call the chip back. WaitForEdge timeouts are virtual
// durations on the bench clock.
type Pin struct {
	name  string
	num   int
	clock *radiosim.Clock
	onOut func(gpio.Level)
	// settles, if set, tells when the level will change by itself soon
	// (BUSY falling after a short command); WaitForEdge then moves the
	// clock there instead of waiting for the pump.
	settles func() (time.Time, bool)

	mu      sync.Mutex
	cond    *sync.Cond
	level   gpio.Level
	edge    gpio.Edge
	pending bool
	gen     uint64 // bumped by In: aborts waits
}

func newPin(clock *radiosim.Clock, name string, num int, initial gpio.Level) *Pin {
	p := &Pin{name: name, num: num, clock: clock, level: initial, edge: gpio.NoEdge}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// set drives the pin from the chip side.
func (p *Pin) set(l gpio.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l == p.level {
		return
	}
	p.level = l
	if p.edge == gpio.BothEdges || (p.edge == gpio.RisingEdge && l == gpio.High) || (p.edge == gpio.FallingEdge && l == gpio.Low) {
		p.pending = true
	}
	p.cond.Broadcast()
}

func (p *Pin) String() string         { return p.name }
func (p *Pin) Halt() error            { return nil }
func (p *Pin) Name() string           { return p.name }
func (p *Pin) Number() int            { return p.num }
func (p *Pin) Function() string       { return "emulated" }
func (p *Pin) Pull() gpio.Pull        { return gpio.PullNoChange }
func (p *Pin) DefaultPull() gpio.Pull { return gpio.Float }
func (p *Pin) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("emulated pin has no PWM")
}

// In sets the edge to wait for, forgets accumulated edges and aborts waits.
func (p *Pin) In(_ gpio.Pull, e gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.edge, p.pending = e, false
	p.gen++
	p.cond.Broadcast()
	return nil
}

// Read returns the level.
func (p *Pin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// WaitForEdge waits for an edge of the kind set by In, or until the virtual
// clock has moved timeout (negative: no timeout).
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	// settles takes the chip's lock, which the chip holds while driving
	// pins: call it before taking the pin's lock.
	if p.settles != nil {
		if at, ok := p.settles(); ok && (timeout < 0 || !at.After(p.clock.Now().Add(timeout))) {
			p.clock.RunUntil(at)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending {
		p.pending = false
		return true
	}
	if timeout == 0 {
		return false
	}
	fired := false
	if timeout > 0 {
		t := p.clock.AfterFunc(timeout, func() {
			p.mu.Lock()
			fired = true
			p.cond.Broadcast()
			p.mu.Unlock()
		})
		defer t.Stop()
	}
	gen := p.gen
	for !p.pending && !fired && gen == p.gen {
		p.cond.Wait()
	}
	if p.pending {
		p.pending = false
		return true
	}
	return false
}

// Out drives an output pin and tells the chip.
func (p *Pin) Out(l gpio.Level) error {
	p.mu.Lock()
	p.level = l
	f := p.onOut
	p.mu.Unlock()
	if f != nil {
		f(l)
	}
	return nil
}

// spiConn is the emulated SPI connection of a chip.
type spiConn struct {
	name string
	tx   func(w, r []byte)
}

func (s *spiConn) String() string      { return s.name }
func (s *spiConn) Duplex() conn.Duplex { return conn.Full }

// Tx runs one transaction (NSS low for its whole length).
func (s *spiConn) Tx(w, r []byte) error {
	if r != nil && len(r) != len(w) {
		return fmt.Errorf("%s: full-duplex Tx needs len(r) == len(w), got %d and %d", s.name, len(r), len(w))
	}
	if r == nil {
		r = make([]byte, len(w))
	}
	s.tx(w, r)
	return nil
}

// TxPackets joins packets into transactions at each KeepCS=false.
func (s *spiConn) TxPackets(ps []spi.Packet) error {
	var w []byte
	var rs [][]byte
	for _, p := range ps {
		w = append(w, p.W...)
		rs = append(rs, p.R)
		if !p.KeepCS {
			r := make([]byte, len(w))
			s.tx(w, r)
			off := 0
			for _, dst := range rs {
				off += copy(dst, r[off:])
			}
			w, rs = nil, nil
		}
	}
	return nil
}

// Opener is an hw.Opener over emulated chips: SPI ports and GPIO names map
// to the chips registered with Attach.
type Opener struct {
	spi  map[string]spi.Conn
	pins map[string]*Pin
}

// NewOpener returns an empty opener.
func NewOpener() *Opener { return &Opener{spi: map[string]spi.Conn{}, pins: map[string]*Pin{}} }

// Attach wires a chip's SPI connection and pins to board b's port and pins.
// Roles the chip does not have are left unconnected.
func (o *Opener) Attach(b hw.Board, conn spi.Conn, pins map[string]*Pin) {
	o.spi[b.SPI] = conn
	for role, n := range b.Pins {
		if p, ok := pins[role]; ok {
			p.name = fmt.Sprintf("GPIO%d", n)
			p.num = n
			o.pins[p.name] = p
		}
	}
}

// OpenSPI implements hw.Opener.
func (o *Opener) OpenSPI(port string, _ int64) (spi.Conn, io.Closer, error) {
	c, ok := o.spi[port]
	if !ok {
		return nil, nil, fmt.Errorf("/dev/spidev for %s missing: %w", port, hw.ErrSPIDisabled)
	}
	return c, io.NopCloser(nil), nil
}

// Pin implements hw.Opener.
func (o *Opener) Pin(name string) (gpio.PinIO, error) {
	p, ok := o.pins[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, hw.ErrNoPin)
	}
	return p, nil
}
