package modememu

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/radiosim"
)

// E22Config sets up an emulated Ebyte E22 (900 MHz part unless Band400).
type E22Config struct {
	Name    string
	X, Y    float64
	Band400 bool
	// Gap is the silence on the UART that ends a packet; 0 means 5 ms.
	Gap time.Duration
	// Stuck, when set, overrides registers whatever is written (address ->
	// value), as a module that does not take a setting.
	Stuck map[byte]byte
	// AirParams maps the air-rate code to a modulation; nil uses the
	// [unverified] table also used by the driver (see lora/modem).
	AirParams func(code byte) airtime.Params
	// AirHeader is how many bytes the module adds on air; 0 means 3.
	AirHeader int
}

// E22 emulates an E22 UART module: mode pins (through Pins), AUX,
// configuration mode at 9600 8N1 only in mode 10 (C0/C2 write with echo,
// C1 read, FF FF FF for a bad command), transparent and fixed-address
// transmission with packets delimited by UART silence or the sub-packet
// size, address/NETID filtering and the optional RSSI byte.
type E22 struct {
	*base
	cfg E22Config
	air *Air

	mu      sync.Mutex
	m1, m0  bool
	regs    [9]byte
	cmd     []byte // configuration-mode input
	pkt     []byte // normal-mode input
	timer   *time.Timer
	sending bool
	radios  map[byte]*radiosim.Radio
}

// NewE22 starts an emulated E22 with factory settings (channel 18, 2.4k
// air rate, 9600 8N1, address 0, 240-byte sub-packets) in normal mode.
func NewE22(air *Air, cfg E22Config) (*E22, error) {
	b, err := newBase()
	if err != nil {
		return nil, err
	}
	if cfg.Gap == 0 {
		cfg.Gap = 5 * time.Millisecond
	}
	if cfg.AirHeader == 0 {
		cfg.AirHeader = 3
	}
	if cfg.AirParams == nil {
		cfg.AirParams = func(code byte) airtime.Params {
			t := [8][2]int{{12, 125000}, {11, 250000}, {11, 500000}, {10, 500000}, {9, 500000}, {7, 500000}, {6, 500000}, {5, 500000}}
			v := t[code&7]
			return airtime.Params{SF: v[0], BandwidthHz: v[1], CR: 1, Preamble: 8, CRC: true}
		}
	}
	e := &E22{base: b, cfg: cfg, air: air, regs: [9]byte{0, 0, 0, 0x62, 0x00, 18, 0x00, 0, 0}, radios: map[byte]*radiosim.Radio{}}
	e.radio(e.regs[5])
	e.timer = time.AfterFunc(time.Hour, e.flush)
	e.timer.Stop()
	go e.serve()
	return e, nil
}

// E22Pins is the emulator's M0/M1/AUX lines; it satisfies modem.E22Pins.
type E22Pins struct{ e *E22 }

// Pins returns the emulated mode pins and AUX line.
func (e *E22) Pins() E22Pins { return E22Pins{e} }

// SetMode sets M1 and M0.
func (p E22Pins) SetMode(m1, m0 bool) error {
	e := p.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m1 && !e.m0 && !(m1 && !m0) {
		e.radios = map[byte]*radiosim.Radio{} // leaving configuration: apply
	}
	e.m1, e.m0 = m1, m0
	e.cmd, e.pkt = nil, nil
	if !m1 {
		e.radio(e.regs[5]) // listen on our channel
	}
	return nil
}

// WaitAUX returns when the module is idle: no bytes waiting in its UART,
// no packet being assembled and nothing on the air.
func (p E22Pins) WaitAUX(ctx context.Context) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		if p.e.idle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (e *E22) idle() bool {
	e.mu.Lock()
	busy := e.sending || len(e.pkt) > 0
	e.mu.Unlock()
	if busy {
		return false
	}
	waiting := 0
	if rc, err := e.pty.Master.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { waiting, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	}
	return waiting == 0
}

// Registers returns registers 00-08.
func (e *E22) Registers() [9]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.regs
}

func (e *E22) serve() {
	buf := make([]byte, 512)
	for {
		n, err := e.pty.Master.Read(buf)
		if err != nil {
			return
		}
		baud := e.pty.Baud()
		e.mu.Lock()
		switch {
		case e.m1 && !e.m0:
			if baud != 0 && baud != 9600 {
				break // wrong line rate: the module sees garbage and stays silent
			}
			e.cmd = append(e.cmd, buf[:n]...)
			e.configure()
		case e.m1 && e.m0:
			// sleep: UART off
		default:
			e.pkt = append(e.pkt, buf[:n]...)
			sub := []int{240, 128, 64, 32}[e.regs[4]>>6]
			if e.regs[6]&0x40 != 0 {
				sub += 3
			}
			if len(e.pkt) >= sub {
				e.timer.Stop()
				e.flushLocked()
			} else {
				e.timer.Reset(e.cfg.Gap)
			}
		}
		e.mu.Unlock()
	}
}

// configure handles complete configuration commands in e.cmd (e.mu held).
func (e *E22) configure() {
	for len(e.cmd) >= 3 {
		op, addr, n := e.cmd[0], int(e.cmd[1]), int(e.cmd[2])
		if (op != 0xC0 && op != 0xC1 && op != 0xC2) || addr+n > len(e.regs) || n == 0 {
			e.cmd = nil
			e.send([]byte{0xFF, 0xFF, 0xFF})
			return
		}
		if op == 0xC1 {
			e.cmd = e.cmd[3:]
			e.send(append([]byte{0xC1, byte(addr), byte(n)}, e.regs[addr:addr+n]...))
			continue
		}
		if len(e.cmd) < 3+n {
			return
		}
		for i := 0; i < n; i++ {
			v := e.cmd[3+i]
			if s, ok := e.cfg.Stuck[byte(addr+i)]; ok {
				v = s
			}
			e.regs[addr+i] = v
		}
		e.cmd = e.cmd[3+n:]
		e.send(append([]byte{0xC1, byte(addr), byte(n)}, e.regs[addr:addr+n]...))
	}
}

func (e *E22) flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushLocked()
}

func (e *E22) freq(ch byte) int64 {
	base := int64(850125000)
	if e.cfg.Band400 {
		base = 410125000
	}
	return base + int64(ch)*1000000
}

func (e *E22) radio(ch byte) *radiosim.Radio {
	if r, ok := e.radios[ch]; ok {
		return r
	}
	cfg := radiosim.RadioConfig{Name: e.radioName(e.cfg.Name), Params: e.cfg.AirParams(e.regs[3] & 7), FrequencyHz: e.freq(ch),
		TxPowerDBm: float64([]int{22, 17, 13, 10}[e.regs[4]&3]), X: e.cfg.X, Y: e.cfg.Y}
	if ch == e.regs[5] {
		cfg.OnReceive = e.heard
	}
	r, err := e.air.Channel.AddRadio(cfg)
	if err != nil {
		return nil
	}
	e.radios[ch] = r
	return r
}

// flushLocked transmits the assembled packet (e.mu held).
func (e *E22) flushLocked() {
	pkt := e.pkt
	e.pkt = nil
	if len(pkt) == 0 || e.m1 {
		return
	}
	own := uint16(e.regs[0])<<8 | uint16(e.regs[1])
	ch := e.regs[5]
	dst := own
	if e.regs[6]&0x40 != 0 {
		if len(pkt) < 4 {
			return
		}
		dst, ch, pkt = uint16(pkt[0])<<8|uint16(pkt[1]), pkt[2], pkt[3:]
	}
	if ch > 83 {
		return
	}
	e.radio(e.regs[5]) // make sure we listen on our channel
	r := e.radio(ch)
	if r == nil {
		return
	}
	air := make([]byte, max(e.cfg.AirHeader, 3), max(e.cfg.AirHeader, 3)+len(pkt))
	air[0], air[1], air[2] = e.regs[2], byte(dst>>8), byte(dst)
	air = append(air, pkt...)
	done, err := r.Transmit(air)
	if err != nil {
		return
	}
	e.sending = true
	e.air.Clock.At(done, func() {
		e.mu.Lock()
		e.sending = false
		e.mu.Unlock()
	})
}

func (e *E22) heard(f radiosim.Frame) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m1 || len(f.Data) <= e.cfg.AirHeader || e.cfg.AirHeader < 3 {
		return
	}
	own := uint16(e.regs[0])<<8 | uint16(e.regs[1])
	netid, dst := f.Data[0], uint16(f.Data[1])<<8|uint16(f.Data[2])
	if netid != e.regs[2] || (dst != own && dst != 0xFFFF && own != 0xFFFF) {
		return
	}
	out := append([]byte(nil), f.Data[e.cfg.AirHeader:]...)
	if e.regs[6]&0x80 != 0 {
		out = append(out, byte(int(math.Max(-255, math.Min(-1, math.Round(f.RSSI))))+256))
	}
	e.send(out)
}
