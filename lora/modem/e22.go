package modem

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/transports/radiolink"
)

// E22Pins drives an E22's mode pins and reads its AUX line.
//
// Contract: SetMode sets M1 and M0 (true = high): 00 normal/transparent,
// 01 WOR, 10 configuration, 11 sleep. WaitAUX returns when AUX is high (the
// module is idle) or ctx ends; implementations without an AUX line wait a
// fixed settle time instead.
type E22Pins interface {
	SetMode(m1, m0 bool) error
	WaitAUX(ctx context.Context) error
}

// NoPins is the E22Pins of a module whose mode is set by jumpers (the
// Waveshare HAT's M0/M1 jumpers): SetMode does nothing, so the driver
// cannot reach configuration mode and uses the module as configured.
type NoPins struct{}

// SetMode does nothing.
func (NoPins) SetMode(m1, m0 bool) error { return nil }

// WaitAUX returns at once.
func (NoPins) WaitAUX(ctx context.Context) error { return ctx.Err() }

// E22 register addresses (spec section 4).
const (
	e22RegADDH  = 0x00
	e22RegADDL  = 0x01
	e22RegNETID = 0x02
	e22RegREG0  = 0x03
	e22RegREG1  = 0x04
	e22RegCH    = 0x05
	e22RegREG3  = 0x06
	e22NumRegs  = 7
)

var e22RegNames = [e22NumRegs]string{"ADDH", "ADDL", "NETID", "REG0 (UART/parity/air rate)", "REG1 (sub-packet/RSSI/power)", "CH (channel)", "REG3 (RSSI byte/fixed mode/LBT)"}

// E22Settings configures an E22. Defaults come from DefaultE22Settings.
type E22Settings struct {
	Address  uint16
	NetID    byte
	Channel  byte // frequency = 850.125 (410.125 when Band400) + Channel MHz
	Band400  bool
	AirRate  byte // REG0[2:0]: 0 0.3k, 1 1.2k, 2 2.4k ... 7 62.5k
	UARTBaud int  // normal-mode UART rate (configuration mode is always 9600)
	// SubPacket is the largest air packet, 240/128/64/32 bytes.
	SubPacket int
	PowerDBm  int  // 22, 17, 13 or 10 [unverified: E22-xxxT22 table]
	Fixed     bool // fixed-address mode: each write starts ADDH ADDL CH
	RSSIByte  bool // module appends an RSSI byte to each received packet
	LBT       bool
	Persist   bool // C0 (saved) instead of C2 (volatile) register writes
	// Destination of frames in fixed mode; 0xFFFF is broadcast.
	Destination uint16
	// M0, M1, AUX are BCM GPIO numbers, -1 when absent (jumpers).
	M0, M1, AUX int
	// Pins drives M0/M1/AUX; nil means NoPins. The daemon builds it from
	// M0/M1/AUX through hw/.
	Pins E22Pins
	// FrameGap ends a received packet: the E22 has no framing on its UART,
	// so a packet is the bytes that arrive without a silence longer than
	// FrameGap. It also separates consecutive writes so the module does
	// not merge two frames into one packet. 0 means the larger of 4
	// character times and 20 ms (USB serial adapters deliver bytes in
	// bursts up to ~16 ms apart).
	FrameGap time.Duration
}

// DefaultE22Settings returns Ebyte's factory settings (channel 18 = 868.125
// MHz on 900 MHz parts, 2.4k air rate, 9600 8N1, 240-byte sub-packets,
// 22 dBm) with the RSSI byte on and broadcast destination.
func DefaultE22Settings() E22Settings {
	return E22Settings{Channel: 18, AirRate: 2, UARTBaud: 9600, SubPacket: 240, PowerDBm: 22, RSSIByte: true, Destination: 0xFFFF, M0: -1, M1: -1, AUX: -1}
}

var e22AirRates = []string{"0.3k", "1.2k", "2.4k", "4.8k", "9.6k", "19.2k", "38.4k", "62.5k"}

func e22AirCode(s string) (byte, bool) { return e22Code(e22AirRates, s) }

// e22Code returns the register code of v, its index in table.
func e22Code[T comparable](table []T, v T) (byte, bool) {
	i := slices.Index(table, v)
	return byte(max(i, 0)), i >= 0
}

// E22AirParams maps an air-rate code to the LoRa modulation used to compute
// time on air. [unverified]: Ebyte does not publish the SF/bandwidth behind
// each rate; these match the nominal bit rates (62.5k = SF5/500 kHz exactly).
func E22AirParams(code byte) airtime.Params {
	t := [8][2]int{{12, 125000}, {11, 250000}, {11, 500000}, {10, 500000}, {9, 500000}, {7, 500000}, {6, 500000}, {5, 500000}}
	v := t[code&7]
	return airtime.Params{SF: v[0], BandwidthHz: v[1], CR: 1, Preamble: 8, CRC: true}
}

// E22AirHeader is the bytes the module adds on air ahead of the payload
// (address and network id) [unverified]; counted in TimeOnAir.
const E22AirHeader = 3

var e22Bauds = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200}

func e22BaudCode(b int) (byte, bool) { return e22Code(e22Bauds, b) }

// e22SubCode codes the sub-packet size, 240/128/64/32 bytes.
func e22SubCode(n int) (byte, bool) { return e22Code([]int{240, 128, 64, 32}, n) }

// e22PowerCode codes the TX power [unverified: E22-xxxT22 table].
func e22PowerCode(dBm int) (byte, bool) { return e22Code([]int{22, 17, 13, 10}, dBm) }

// Registers returns the seven register values (00-06) for s.
func (s E22Settings) Registers() ([e22NumRegs]byte, error) {
	var r [e22NumRegs]byte
	baud, ok := e22BaudCode(s.UARTBaud)
	if !ok {
		return r, fmt.Errorf("e22: UART rate %d: use 1200..115200 (standard rates)", s.UARTBaud)
	}
	sub, ok := e22SubCode(s.SubPacket)
	if !ok {
		return r, fmt.Errorf("e22: sub-packet %d: use 240, 128, 64 or 32", s.SubPacket)
	}
	pw, ok := e22PowerCode(s.PowerDBm)
	if !ok {
		return r, fmt.Errorf("e22: power %d dBm: use 22, 17, 13 or 10", s.PowerDBm)
	}
	if s.Channel > 83 {
		return r, fmt.Errorf("e22: channel %d: use 0..83", s.Channel)
	}
	r[e22RegADDH], r[e22RegADDL], r[e22RegNETID] = byte(s.Address>>8), byte(s.Address), s.NetID
	r[e22RegREG0] = baud<<5 | s.AirRate&7 // parity 00 = 8N1
	r[e22RegREG1] = sub<<6 | pw
	r[e22RegCH] = s.Channel
	if s.RSSIByte {
		r[e22RegREG3] |= 0x80
	}
	if s.Fixed {
		r[e22RegREG3] |= 0x40
	}
	if s.LBT {
		r[e22RegREG3] |= 0x10
	}
	return r, nil
}

// E22 drives an Ebyte E22 UART module (or a Waveshare UART LoRa HAT).
type E22 struct {
	serialDevice
	cfg  Config
	s    E22Settings
	pins E22Pins
	gap  time.Duration
}

// OpenE22 configures the module (when its pins are driven: configuration
// mode at 9600 8N1, register write, echo and read-back verification), then
// switches to normal mode and opens the port at the configured UART rate.
func OpenE22(ctx context.Context, cfg Config) (*E22, error) {
	s := cfg.E22
	if s.SubPacket == 0 {
		s = DefaultE22Settings()
	}
	pins := s.Pins
	if pins == nil {
		pins = NoPins{}
	}
	regs, err := s.Registers()
	if err != nil {
		return nil, err
	}
	open := cfg.opener()
	if _, strapped := pins.(NoPins); !strapped {
		if err := e22Configure(ctx, cfg.Path, open, pins, regs, s.Persist); err != nil {
			return nil, err
		}
	}
	if err := pins.SetMode(false, false); err != nil {
		return nil, fmt.Errorf("e22 on %s: setting normal mode (M1=0 M0=0): %w", cfg.Path, err)
	}
	if err := pins.WaitAUX(ctx); err != nil {
		return nil, fmt.Errorf("e22 on %s: waiting for AUX after mode change: %w", cfg.Path, err)
	}
	port, err := open(cfg.Path, lineMode(s.UARTBaud))
	if err != nil {
		return nil, fmt.Errorf("e22: %w", err)
	}
	gap := s.FrameGap
	if gap <= 0 {
		gap = max(4*charTime(s.UARTBaud), 20*time.Millisecond)
	}
	cfg.LoRa = E22AirParams(s.AirRate)
	m := &E22{cfg: cfg, s: s, pins: pins, gap: gap}
	m.init("e22", cfg, port)
	m.run(cfg.now(), m.readLoop)
	m.log.Info("e22 ready", "path", cfg.Path, "channel", s.Channel, "air_rate", e22AirRates[s.AirRate&7], "fixed", s.Fixed, "frame_gap", gap)
	return m, nil
}

// charTime is the duration of one 10-bit character (8N1) at baud.
func charTime(baud int) time.Duration {
	return time.Duration(10 * float64(time.Second) / float64(baud))
}

func e22Configure(ctx context.Context, path string, open PortOpener, pins E22Pins, regs [e22NumRegs]byte, persist bool) error {
	if err := pins.SetMode(true, false); err != nil {
		return fmt.Errorf("e22 on %s: setting configuration mode (M1=1 M0=0): %w", path, err)
	}
	if err := pins.WaitAUX(ctx); err != nil {
		return fmt.Errorf("e22 on %s: waiting for AUX after mode change: %w", path, err)
	}
	port, err := open(path, lineMode(9600))
	if err != nil {
		return fmt.Errorf("e22 configuration: %w", err)
	}
	defer port.Close()
	op := byte(0xC2)
	if persist {
		op = 0xC0
	}
	cmd := append([]byte{op, 0x00, e22NumRegs}, regs[:]...)
	check := func(what string, reply []byte, err error) error {
		if err != nil {
			return fmt.Errorf("e22 on %s: %s: %w", path, what, err)
		}
		got, perr := parseE22Reply(reply, 0x00, e22NumRegs)
		if perr != nil {
			return fmt.Errorf("e22 on %s: %s: %w", path, what, perr)
		}
		for i := range regs {
			if got[i] != regs[i] {
				return fmt.Errorf("e22 on %s: %s: register %02X %s reads 0x%02X but Tern wrote 0x%02X: the module did not take the setting (check the model supports it)", path, what, i, e22RegNames[i], got[i], regs[i])
			}
		}
		return nil
	}
	reply, err := e22Exchange(ctx, port, cmd, 3+e22NumRegs)
	if err := check("register write", reply, err); err != nil {
		return err
	}
	reply, err = e22Exchange(ctx, port, []byte{0xC1, 0x00, e22NumRegs}, 3+e22NumRegs)
	return check("register read-back", reply, err)
}

// e22Exchange writes cmd and reads until want bytes, an FF FF FF refusal,
// or one second.
func e22Exchange(ctx context.Context, port io.ReadWriteCloser, cmd []byte, want int) ([]byte, error) {
	if _, err := port.Write(cmd); err != nil {
		return nil, err
	}
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var got []byte
		buf := make([]byte, 64)
		for len(got) < want && !(len(got) >= 3 && got[0] == 0xFF && got[1] == 0xFF && got[2] == 0xFF) {
			n, err := port.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				ch <- res{got, err}
				return
			}
		}
		ch <- res{got, nil}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(time.Second):
		port.Close() // unblocks the reader
		return nil, fmt.Errorf("no reply within 1s: is the module in configuration mode (M1=1 M0=0) at 9600 8N1, and wired TX<->RX?")
	case <-ctx.Done():
		port.Close()
		return nil, ctx.Err()
	}
}

// parseE22Reply checks a configuration reply `C1 addr len data` against the
// expected address and length and returns data.
func parseE22Reply(b []byte, addr, n byte) ([]byte, error) {
	if len(b) >= 3 && b[0] == 0xFF && b[1] == 0xFF && b[2] == 0xFF {
		return nil, fmt.Errorf("module answered FF FF FF (bad command): is it in configuration mode at 9600 8N1?")
	}
	if len(b) < 3 || b[0] != 0xC1 {
		return nil, fmt.Errorf("reply % X is not C1 addr len data", b)
	}
	if b[1] != addr || b[2] != n {
		return nil, fmt.Errorf("reply for registers %02X+%d, asked for %02X+%d", b[1], b[2], addr, n)
	}
	if len(b) != 3+int(n) {
		return nil, fmt.Errorf("reply has %d data bytes, want %d", len(b)-3, n)
	}
	return b[3:], nil
}

// MaxFrame returns the sub-packet size (less the 3-byte address header in
// fixed mode): longer writes would be split into several air packets.
func (m *E22) MaxFrame() int {
	if m.s.Fixed {
		return m.s.SubPacket - 3
	}
	return m.s.SubPacket
}

// TimeOnAir returns the estimated air time of an n-byte frame at the
// module's air rate (see E22AirParams and E22AirHeader, both [unverified]).
func (m *E22) TimeOnAir(n int) time.Duration {
	return E22AirParams(m.s.AirRate).TimeOnAir(n + E22AirHeader)
}

// Transmit writes one frame (prefixed by ADDH ADDL CH in fixed mode), keeps
// the line quiet for FrameGap so the module sees the packet end, then waits
// for AUX (or, without pins, for the frame's time on air).
func (m *E22) Transmit(ctx context.Context, frame []byte) error {
	if len(frame) == 0 || len(frame) > m.MaxFrame() {
		return fmt.Errorf("e22 on %s: frame of %d bytes: send 1..%d bytes (the sub-packet size)", m.cfg.Path, len(frame), m.MaxFrame())
	}
	if err := m.usable(); err != nil {
		return err
	}
	out := frame
	if m.s.Fixed {
		out = append([]byte{byte(m.s.Destination >> 8), byte(m.s.Destination), m.s.Channel}, frame...)
	}
	if err := m.write(out); err != nil {
		return err
	}
	// The line gap is real serial time; the air time follows cfg.After.
	lineWait := time.After(m.gap + charTime(m.s.UARTBaud)*time.Duration(len(out)))
	airWait := make(<-chan time.Time)
	if _, strapped := m.pins.(NoPins); strapped {
		airWait = m.cfg.After.orDefault()(m.TimeOnAir(len(frame)))
	} else {
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		airWait = ch
	}
	for _, w := range []<-chan time.Time{lineWait, airWait} {
		if _, _, err := waitFor(ctx, &m.serialDevice, w, nil); err != nil {
			return err
		}
	}
	if err := m.pins.WaitAUX(ctx); err != nil {
		return fmt.Errorf("e22 on %s: waiting for the end of transmission (AUX): %w", m.cfg.Path, err)
	}
	return nil
}

// Receive returns the next packet; with the RSSI byte on, its RSSI.
func (m *E22) Receive(ctx context.Context) (radiolink.RxFrame, error) { return m.receive(ctx) }

// Close closes the port.
func (m *E22) Close() error {
	m.shutdown(nil)
	return nil
}

// readLoop cuts the byte stream into packets at silences longer than gap.
func (m *E22) readLoop(chunks <-chan chunk) {
	var pkt []byte
	var at time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if f, ok := e22Packet(pkt, m.s.RSSIByte); ok {
			f.At = at
			m.deliver(f)
		}
		pkt = nil
	}
	for {
		select {
		case c, ok := <-chunks:
			if !ok {
				timer.Stop()
				flush()
				return
			}
			pkt = append(pkt, c.b...)
			at = c.at
			timer.Reset(m.gap)
		case <-timer.C:
			flush()
		}
	}
}

// e22Packet turns the bytes of one packet into a frame, taking the last
// byte as RSSI (-(256-v) dBm) when the module appends it.
func e22Packet(pkt []byte, rssiByte bool) (radiolink.RxFrame, bool) {
	f := radiolink.RxFrame{RSSI: math.NaN(), SNR: math.NaN()}
	if rssiByte {
		if len(pkt) < 2 {
			return f, false
		}
		f.RSSI = -float64(256 - int(pkt[len(pkt)-1]))
		pkt = pkt[:len(pkt)-1]
	}
	if len(pkt) == 0 {
		return f, false
	}
	f.Data = append([]byte(nil), pkt...)
	return f, true
}
