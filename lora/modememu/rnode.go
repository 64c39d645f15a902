package modememu

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/radiosim"
)

// RNodeConfig sets up an emulated RNode.
type RNodeConfig struct {
	Name string
	X, Y float64
	// FWMajor, FWMinor, Platform, MCU are reported to detect (defaults
	// 1.74, 0x80 ESP32, 0x81).
	FWMajor, FWMinor, Platform, MCU byte
	// WrongEcho, when set, replaces the echoed value of a configuration
	// command (keyed by command byte), to test verification.
	WrongEcho map[byte][]byte
	// Silent makes the emulator ignore everything (not an RNode).
	Silent bool
	// QueueLen is the firmware's transmit queue; 0 means 16.
	QueueLen int
}

// RNode emulates RNode firmware: KISS host protocol, detect, echoed
// configuration, RSSI/SNR reports before each received packet, and the
// split of payloads over 254 bytes into two LoRa frames behind a 1-byte
// header (sequence nibble, bit0 = split).
type RNode struct {
	*base
	cfg RNodeConfig
	air *Air

	mu      sync.Mutex
	freq    int64
	bw      int
	sf, cr  int
	txp     int8
	on      bool
	radio   *radiosim.Radio
	queue   [][]byte // air frames waiting
	sending bool
	seq     byte
	partial []byte // first half of a split packet
	partSeq byte
}

// NewRNode starts an emulated RNode on air. Open its Path() as a driver.
func NewRNode(air *Air, cfg RNodeConfig) (*RNode, error) {
	b, err := newBase()
	if err != nil {
		return nil, err
	}
	if cfg.FWMajor == 0 && cfg.FWMinor == 0 {
		cfg.FWMajor, cfg.FWMinor = 1, 74
	}
	if cfg.Platform == 0 {
		cfg.Platform = 0x80
	}
	if cfg.MCU == 0 {
		cfg.MCU = 0x81
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = 16
	}
	e := &RNode{base: b, cfg: cfg, air: air}
	go e.serve()
	return e, nil
}

func (e *RNode) serve() {
	buf := make([]byte, 512)
	var frame []byte
	in, esc := false, false
	for {
		n, err := e.pty.Master.Read(buf)
		if err != nil {
			return
		}
		if e.cfg.Silent {
			continue
		}
		for _, c := range buf[:n] {
			switch {
			case c == 0xC0:
				if in && len(frame) > 0 {
					e.command(frame)
				}
				frame, in, esc = frame[:0], true, false
			case !in:
			case esc:
				esc = false
				switch c {
				case 0xDC:
					frame = append(frame, 0xC0)
				case 0xDD:
					frame = append(frame, 0xDB)
				}
			case c == 0xDB:
				esc = true
			default:
				frame = append(frame, c)
			}
		}
	}
}

func kiss(cmd byte, args []byte) []byte {
	out := []byte{0xC0}
	for _, b := range append([]byte{cmd}, args...) {
		switch b {
		case 0xC0:
			out = append(out, 0xDB, 0xDC)
		case 0xDB:
			out = append(out, 0xDB, 0xDD)
		default:
			out = append(out, b)
		}
	}
	return append(out, 0xC0)
}

func (e *RNode) echo(cmd byte, val []byte) {
	if w, ok := e.cfg.WrongEcho[cmd]; ok {
		val = w
	}
	e.send(kiss(cmd, val))
}

func (e *RNode) command(f []byte) {
	cmd, args := f[0], f[1:]
	e.mu.Lock()
	defer e.mu.Unlock()
	switch cmd {
	case 0x08:
		if len(args) == 1 && args[0] == 0x73 {
			e.send(kiss(0x08, []byte{0x46}))
		}
	case 0x50:
		e.send(kiss(0x50, []byte{e.cfg.FWMajor, e.cfg.FWMinor}))
	case 0x48:
		e.send(kiss(0x48, []byte{e.cfg.Platform}))
	case 0x49:
		e.send(kiss(0x49, []byte{e.cfg.MCU}))
	case 0x01, 0x02:
		if len(args) != 4 {
			return
		}
		v := binary.BigEndian.Uint32(args)
		if cmd == 0x01 {
			e.freq = int64(v)
		} else {
			e.bw = int(v)
		}
		e.echo(cmd, args)
	case 0x03, 0x04, 0x05:
		if len(args) != 1 {
			return
		}
		switch cmd {
		case 0x03:
			e.txp = int8(args[0])
		case 0x04:
			e.sf = int(args[0])
		case 0x05:
			e.cr = int(args[0])
		}
		e.echo(cmd, args)
	case 0x06:
		if len(args) != 1 {
			return
		}
		if args[0] != 1 {
			e.on = false
			e.echo(cmd, []byte{0})
			return
		}
		p := airtime.Params{SF: e.sf, BandwidthHz: e.bw, CR: e.cr - 4, Preamble: 8, CRC: true}
		if p.Validate() != nil || e.cr < 5 || e.cr > 8 || e.freq < 137e6 || e.freq > 1020e6 {
			e.echo(cmd, []byte{0})
			e.send(kiss(0x90, []byte{1}))
			return
		}
		r, err := e.air.Channel.AddRadio(radiosim.RadioConfig{Name: e.radioName(e.cfg.Name), Params: p, FrequencyHz: e.freq,
			TxPowerDBm: float64(e.txp), X: e.cfg.X, Y: e.cfg.Y, OnReceive: e.heard})
		if err != nil {
			e.echo(cmd, []byte{0})
			e.send(kiss(0x90, []byte{1}))
			return
		}
		e.radio, e.on = r, true
		e.echo(cmd, []byte{1})
	case 0x00:
		if !e.on || len(args) == 0 || len(args) > 508 {
			e.send(kiss(0x90, []byte{2}))
			return
		}
		if len(e.queue) >= e.cfg.QueueLen {
			e.send(kiss(0x90, []byte{4}))
			return
		}
		e.seq += 0x10
		if len(args) <= 254 {
			e.queue = append(e.queue, append([]byte{e.seq & 0xF0}, args...))
		} else {
			h := e.seq&0xF0 | 1
			e.queue = append(e.queue, append([]byte{h}, args[:254]...), append([]byte{h}, args[254:]...))
		}
		e.kick()
	}
}

// kick starts the next queued air frame (e.mu held).
func (e *RNode) kick() {
	if e.sending || len(e.queue) == 0 || !e.on {
		return
	}
	f := e.queue[0]
	e.queue = e.queue[1:]
	done, err := e.radio.Transmit(f)
	if err != nil {
		e.send(kiss(0x90, []byte{2}))
		return
	}
	e.sending = true
	e.air.Clock.At(done, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.sending = false
		e.kick()
	})
}

// heard runs on the pump when a frame arrives intact.
func (e *RNode) heard(f radiosim.Frame) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.on || len(f.Data) < 2 {
		return
	}
	h, data := f.Data[0], f.Data[1:]
	var payload []byte
	switch {
	case h&1 == 0:
		e.partial = nil
		payload = data
	case e.partial != nil && e.partSeq == h&0xF0:
		payload = append(e.partial, data...)
		e.partial = nil
	default:
		e.partial, e.partSeq = append([]byte(nil), data...), h&0xF0
		return
	}
	rssi := math.Round(f.RSSI) + 157
	rssi = math.Max(0, math.Min(255, rssi))
	snr := math.Max(-128, math.Min(127, math.Round(f.SNR*4)))
	e.send(kiss(0x23, []byte{byte(rssi)}))
	e.send(kiss(0x24, []byte{byte(int8(snr))}))
	e.send(kiss(0x00, payload))
}

// String names the emulator in test logs.
func (e *RNode) String() string { return fmt.Sprintf("emulated RNode %s on %s", e.cfg.Name, e.Path()) }
