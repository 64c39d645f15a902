package chipemu

import (
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"
)

// chipBase is what both emulated chips share: name and bench, the RESET
// and CS lines, the lock, injected faults, the violation log and the frame
// counters.
type chipBase struct {
	name  string
	bench *Bench

	// Reset (output from the driver) and CS (optional hand-driven chip
	// select; when attached, NSS must be low during Tx).
	Reset, CS *Pin

	mu       sync.Mutex
	inReset  bool
	csWired  bool
	faults   Faults
	viol     violations
	txFrames int
	rxFrames int
	// updatePins drives the chip's output lines from its state; called
	// with mu held.
	updatePins func()
}

// initBase creates the RESET and CS pins; resetLine gets RESET's level.
func (c *chipBase) initBase(b *Bench, name string, resetLine func(gpio.Level), updatePins func()) {
	c.name, c.bench, c.updatePins = name, b, updatePins
	c.Reset = newPin(b.Clock, name+".RESET", -1, gpio.High)
	c.CS = newPin(b.Clock, name+".CS", -1, gpio.High)
	c.Reset.onOut = resetLine
	c.CS.onOut = func(gpio.Level) { c.mu.Lock(); c.csWired = true; c.mu.Unlock() }
}

func (c *chipBase) spiConn(tx func(w, r []byte)) spi.Conn {
	return &spiConn{name: c.name + ".SPI", tx: tx}
}

// SetFaults replaces the injected faults.
func (c *chipBase) SetFaults(f Faults) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = f
	c.updatePins()
}

// Violations returns the protocol violations recorded so far.
func (c *chipBase) Violations() []Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Violation(nil), c.viol.list...)
}

// Frames returns how many frames the chip sent and received.
func (c *chipBase) Frames() (tx, rx int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.txFrames, c.rxFrames
}

func (c *chipBase) now() time.Time { return c.bench.Clock.Now() }

// busAnswers starts an SPI transaction (mu held): it clears r, or fills it
// with the unplugged bus byte, and reports whether the chip sees w at all.
func (c *chipBase) busAnswers(w, r []byte) bool {
	clear(r)
	if c.faults.Unplugged {
		for i := range r {
			r[i] = c.faults.UnpluggedByte
		}
		return false
	}
	return len(w) > 0
}

// csIgnored reports (and records) a transaction the chip does not see
// because the hand-driven CS is high.
func (c *chipBase) csIgnored() bool {
	if c.csWired && c.CS.Read() != gpio.Low {
		c.viol.add(c.now(), VNoCS, "SPI transaction with the hand-driven CS high: the chip does not see it")
		return true
	}
	return false
}
