package hw

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spireg"
	"periph.io/x/host/v3"
)

// ErrSPIDisabled is returned (wrapped) when the SPI device node is missing.
var ErrSPIDisabled = errors.New("SPI is not enabled: enable SPI with raspi-config or dtparam=spi=on in /boot/firmware/config.txt, then reboot")

// ErrNoPin is returned (wrapped) when a GPIO cannot be found.
var ErrNoPin = errors.New("GPIO pin not found")

// Opener opens SPI ports and GPIO pins by name.
//
// Contract: OpenSPI connects port (a periph name such as "SPI0.0") in SPI
// mode 0, 8 bits, at most maxHz, and returns the connection and a closer
// that releases the port; it wraps ErrSPIDisabled when the port does not
// exist. Pin returns the GPIO named "GPIO<n>" (BCM numbering) or an error
// wrapping ErrNoPin. Production uses NewPeriph; tests inject emulated chips.
type Opener interface {
	OpenSPI(port string, maxHz int64) (spi.Conn, io.Closer, error)
	Pin(name string) (gpio.PinIO, error)
}

// Handle is an opened SPI board: the connection and the pins its driver needs.
// Pins the board does not have are nil.
type Handle struct {
	Board Board
	Conn  spi.Conn
	Reset gpio.PinOut
	IRQ   gpio.PinIn
	Busy  gpio.PinIn
	close io.Closer
}

// Close releases the SPI port. It is safe to call more than once.
func (h *Handle) Close() error {
	if h.close == nil {
		return nil
	}
	c := h.close
	h.close = nil
	return c.Close()
}

// Open opens an SPI board through o: the SPI port (with a hand-driven CS
// when the board has one), RESET (driven high, chip running), IRQ as a
// rising-edge input and BUSY as an input.
func Open(b Board, o Opener) (*Handle, error) {
	if b.SPI == "" {
		return nil, fmt.Errorf("board %s (%s) is a serial board on %s, not SPI: use its serial driver", b.Name, b.Chip, b.Serial)
	}
	maxHz := int64(8_000_000)
	conn, closer, err := o.OpenSPI(b.SPI, maxHz)
	if err != nil {
		return nil, fmt.Errorf("board %s: open %s: %w", b.Name, b.SPI, err)
	}
	h := &Handle{Board: b, Conn: conn, close: closer}
	fail := func(err error) (*Handle, error) {
		h.Close()
		return nil, err
	}
	pin := func(role string) (gpio.PinIO, error) {
		n, ok := b.Pin(role)
		if !ok {
			return nil, nil
		}
		p, err := o.Pin(fmt.Sprintf("GPIO%d", n))
		if err != nil {
			return nil, fmt.Errorf("board %s: %s pin GPIO%d: %w (override it with ?%s=N)", b.Name, role, n, err, role)
		}
		return p, nil
	}
	if cs, err := pin(PinCS); err != nil {
		return fail(err)
	} else if cs != nil {
		if err := cs.Out(gpio.High); err != nil {
			return fail(fmt.Errorf("board %s: drive CS GPIO%d: %w", b.Name, b.Pins[PinCS], err))
		}
		h.Conn = &ManualCS{Conn: conn, CS: cs}
	}
	if rst, err := pin(PinReset); err != nil {
		return fail(err)
	} else if rst != nil {
		if err := rst.Out(gpio.High); err != nil {
			return fail(fmt.Errorf("board %s: drive RESET GPIO%d: %w", b.Name, b.Pins[PinReset], err))
		}
		h.Reset = rst
	}
	if irq, err := pin(PinIRQ); err != nil {
		return fail(err)
	} else if irq != nil {
		if err := irq.In(gpio.PullDown, gpio.RisingEdge); err != nil {
			return fail(fmt.Errorf("board %s: IRQ GPIO%d as input: %w", b.Name, b.Pins[PinIRQ], err))
		}
		h.IRQ = irq
	}
	if busy, err := pin(PinBusy); err != nil {
		return fail(err)
	} else if busy != nil {
		if err := busy.In(gpio.PullNoChange, gpio.FallingEdge); err != nil {
			return fail(fmt.Errorf("board %s: BUSY GPIO%d as input: %w", b.Name, b.Pins[PinBusy], err))
		}
		h.Busy = busy
	}
	if b.Chip == SX1262 && h.Busy == nil {
		return fail(fmt.Errorf("board %s: an SX126x needs its BUSY pin: add ?busy=N", b.Name))
	}
	if h.IRQ == nil {
		return fail(fmt.Errorf("board %s: no IRQ pin: add ?irq=N (DIO0 on SX127x, DIO1 on SX126x)", b.Name))
	}
	return h, nil
}

// ManualCS is an spi.Conn whose chip select is a plain GPIO driven low
// around each transaction (the board's CS is not a hardware CE line).
type ManualCS struct {
	Conn spi.Conn
	CS   gpio.PinOut
	mu   sync.Mutex
}

func (m *ManualCS) String() string      { return m.Conn.String() + "+CS(" + m.CS.Name() + ")" }
func (m *ManualCS) Duplex() conn.Duplex { return m.Conn.Duplex() }
func (m *ManualCS) TxPackets(p []spi.Packet) error {
	return m.with(func() error { return m.Conn.TxPackets(p) })
}

// Tx runs one transaction with CS held low.
func (m *ManualCS) Tx(w, r []byte) error { return m.with(func() error { return m.Conn.Tx(w, r) }) }

func (m *ManualCS) with(f func() error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.CS.Out(gpio.Low); err != nil {
		return fmt.Errorf("CS low: %w", err)
	}
	err := f()
	if e := m.CS.Out(gpio.High); e != nil && err == nil {
		err = fmt.Errorf("CS high: %w", e)
	}
	return err
}

// Periph opens ports and pins through periph.io's host drivers (the Pi's
// /dev/spidev* and GPIO character devices).
type Periph struct{}

// NewPeriph initialises periph's host drivers.
func NewPeriph() (*Periph, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("initialise periph host drivers: %w", err)
	}
	return &Periph{}, nil
}

// OpenSPI implements Opener.
func (*Periph) OpenSPI(port string, maxHz int64) (spi.Conn, io.Closer, error) {
	if dev := spidevPath(port); dev != "" {
		if _, err := os.Stat(dev); errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%s missing: %w", dev, ErrSPIDisabled)
		}
	}
	p, err := spireg.Open(port)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s (is SPI enabled? %v): %w", port, ErrSPIDisabled, err)
	}
	c, err := p.Connect(physic.Frequency(maxHz)*physic.Hertz, spi.Mode0, 8)
	if err != nil {
		p.Close()
		return nil, nil, fmt.Errorf("connect %s in mode 0: %w", port, err)
	}
	return c, p, nil
}

// Pin implements Opener.
func (*Periph) Pin(name string) (gpio.PinIO, error) {
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("%s: %w (on a Pi 5 check the gpiochip and override the pin)", name, ErrNoPin)
	}
	return p, nil
}

// spidevPath maps "SPI0.1" to "/dev/spidev0.1"; other names map to "".
func spidevPath(port string) string {
	rest, ok := strings.CutPrefix(strings.ToUpper(port), "SPI")
	if !ok || !strings.Contains(rest, ".") {
		return ""
	}
	return "/dev/spidev" + rest
}
