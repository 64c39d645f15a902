// Package modememu emulates the serial LoRa modems Tern drives (RNode, Ebyte
// E22, RAK3172 with RUI3 AT firmware) behind real pseudo-terminals, so the
// drivers in lora/modem are tested through the production serial path
// (go.bug.st/serial opening a tty) with no hardware.
//
// Each emulator serves the master side of a pty and is joined to a
// lora/radiosim channel through an Air: a frame one emulator transmits
// occupies the air for exactly its LoRa time on air, then every emulator
// that hears it writes it to its own serial side, as the firmware would.
//
// Time: radiosim runs on a virtual clock, while serial bytes move in real
// time. Air bridges the two with a pump that advances the virtual clock in
// step with the wall clock at a fixed speed-up (Air.SpeedUp, 20 by default):
// virtual time is start + speedup * (wall time since start). This keeps the
// order of events on the serial lines and on the air consistent (a frame
// sent after another is never delivered before it), keeps every time on air
// exact in virtual time (tests check Frame.End - Frame.Start against
// lora/airtime), and runs a second of air in 50 ms of test time. It is not
// bit-for-bit deterministic across runs (serial scheduling is real), which
// is why tests assert on what arrived and on virtual durations, never on
// wall-clock timings.
//
// Facts come from /work/shared/specs/radio-interfaces.md section 4; where the
// emulators must guess (marked [unverified] in the docs), the guess is a
// field of the emulator's config so a test can change it.
package modememu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal pair: the emulator reads and writes Master, a
// driver opens SlavePath as if it were /dev/ttyUSB0.
//
// The PTY keeps its own descriptor on the slave open, so a driver may close
// and reopen the path (as the E22 driver does to change baud rate) without
// the master seeing a hang-up, and so the emulator can read the line
// settings the driver chose (Baud).
type PTY struct {
	Master    *os.File
	SlavePath string

	mu    sync.Mutex
	slave int // fd, -1 once closed
}

// OpenPTY allocates a pseudo-terminal in raw mode (no echo, no line
// editing, no CR/LF translation: bytes pass unchanged).
func OpenPTY() (*PTY, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ptmx: %w (is devpts mounted?)", err)
	}
	// Control keeps the descriptor non-blocking (Fd would not), so Close
	// unblocks a pending Read.
	var n int
	rc, err := m.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err != nil {
				err = fmt.Errorf("unlockpt: %w", err)
				return
			}
			if n, err = unix.IoctlGetInt(int(fd), unix.TIOCGPTN); err != nil {
				err = fmt.Errorf("ptsname: %w", err)
			}
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	path := "/dev/pts/" + strconv.Itoa(n)
	s, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	t, err := unix.IoctlGetTermios(s, unix.TCGETS)
	if err == nil {
		// cfmakeraw
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN] = 1
		t.Cc[unix.VTIME] = 0
		err = unix.IoctlSetTermios(s, unix.TCSETS, t)
	}
	if err != nil {
		unix.Close(s)
		m.Close()
		return nil, fmt.Errorf("raw mode on %s: %w", path, err)
	}
	return &PTY{Master: m, SlavePath: path, slave: s}, nil
}

// Baud returns the baud rate the slave side is set to now (what the driver
// asked for), or 0 when unknown.
func (p *PTY) Baud() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slave < 0 {
		return 0
	}
	t, err := unix.IoctlGetTermios(p.slave, unix.TCGETS)
	if err != nil {
		return 0
	}
	return baudFromTermios(t)
}

func baudFromTermios(t *unix.Termios) int {
	switch t.Cflag & unix.CBAUD {
	case unix.B1200:
		return 1200
	case unix.B2400:
		return 2400
	case unix.B4800:
		return 4800
	case unix.B9600:
		return 9600
	case unix.B19200:
		return 19200
	case unix.B38400:
		return 38400
	case unix.B57600:
		return 57600
	case unix.B115200:
		return 115200
	case unix.BOTHER:
		return int(t.Ospeed)
	}
	return 0
}

// Close closes both sides: a driver using the slave sees its modem go away
// (reads fail), as when a USB modem is unplugged. Close is idempotent.
func (p *PTY) Close() error {
	p.mu.Lock()
	s := p.slave
	p.slave = -1
	p.mu.Unlock()
	err := p.Master.Close()
	if s >= 0 {
		unix.Close(s)
	}
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
