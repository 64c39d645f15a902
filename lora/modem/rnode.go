package modem

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/transports/radiolink"
)

// RNode host protocol constants (KISS framing, spec section 4).
const (
	kissFEND  = 0xC0
	kissFESC  = 0xDB
	kissTFEND = 0xDC
	kissTFESC = 0xDD

	rnCmdData       = 0x00
	rnCmdFrequency  = 0x01
	rnCmdBandwidth  = 0x02
	rnCmdTxPower    = 0x03
	rnCmdSF         = 0x04
	rnCmdCR         = 0x05
	rnCmdRadioState = 0x06
	rnCmdDetect     = 0x08
	rnCmdReady      = 0x0F
	rnCmdStatRSSI   = 0x23
	rnCmdStatSNR    = 0x24
	rnCmdFWVersion  = 0x50
	rnCmdPlatform   = 0x48
	rnCmdMCU        = 0x49
	rnCmdError      = 0x90

	rnDetectReq  = 0x73
	rnDetectResp = 0x46

	// rnodeMaxPayload is the largest host payload; above rnodeSplitAt the
	// firmware sends two LoRa frames.
	rnodeMaxPayload = 508
	rnodeSplitAt    = 254
	rnodeRSSIOffset = 157
	rnodeMaxKISS    = 1100 // longest decoded frame kept; longer ones are dropped
)

// rnodeDetect is the detect handshake of the spec.
var rnodeDetect = []byte{0xC0, 0x08, 0x73, 0xC0, 0x50, 0x00, 0xC0, 0x48, 0x00, 0xC0, 0x49, 0x00, 0xC0}

// RNodeErrorText explains the firmware's ERROR codes.
func RNodeErrorText(code byte) string {
	switch code {
	case 1:
		return "radio initialisation failed (check the frequency is one the board's radio supports)"
	case 2:
		return "transmission failed"
	case 3:
		return "EEPROM is locked (provision the device with rnodeconf)"
	case 4:
		return "transmit queue full (send less often)"
	case 5:
		return "firmware memory low"
	case 6:
		return "modem timeout (the radio chip stopped answering; power-cycle the RNode)"
	}
	return fmt.Sprintf("unknown error code 0x%02X", code)
}

// RNodeOptions tunes the RNode driver.
type RNodeOptions struct {
	// BootWait is how long to wait after opening the port before the detect
	// handshake: opening the port resets many ESP32 boards [unverified: 2 s
	// is a guess that covers common boards].
	BootWait time.Duration
	// DetectTimeout bounds the detect handshake and each configuration echo.
	DetectTimeout time.Duration
	// MaxFrame is the largest host payload: 508 by default (the firmware
	// splits frames over 254 B into two LoRa frames, spec section 4); set
	// 254 to keep one LoRa frame per Device frame.
	MaxFrame int
	// WaitAirtime makes Transmit wait the frame's time on air after handing
	// it over, so frames never pile up in the firmware's queue (the
	// firmware's READY flow control is [unverified] and not used).
	WaitAirtime bool
}

// DefaultRNodeOptions returns the defaults described on RNodeOptions.
func DefaultRNodeOptions() RNodeOptions {
	return RNodeOptions{BootWait: 2 * time.Second, DetectTimeout: 3 * time.Second, MaxFrame: rnodeMaxPayload, WaitAirtime: true}
}

// RNodeInfo is what the detect handshake reported.
type RNodeInfo struct {
	FirmwareMajor, FirmwareMinor byte
	Platform, MCU                byte
}

// RNode drives an RNode. It implements Modem.
type RNode struct {
	serialDevice
	cfg  Config
	info RNodeInfo

	echo chan []byte // replies to detect and configuration commands
	errs chan byte   // ERROR codes
}

// OpenRNode opens cfg.Path at 115200 8N1, runs the detect handshake,
// configures the radio (frequency, bandwidth, TX power, SF, CR, radio on)
// and verifies every echoed value.
func OpenRNode(ctx context.Context, cfg Config) (*RNode, error) {
	if cfg.RNode == (RNodeOptions{}) {
		cfg.RNode = DefaultRNodeOptions()
	}
	if cfg.RNode.DetectTimeout <= 0 {
		cfg.RNode.DetectTimeout = 3 * time.Second
	}
	if cfg.RNode.MaxFrame <= 0 || cfg.RNode.MaxFrame > rnodeMaxPayload {
		cfg.RNode.MaxFrame = rnodeMaxPayload
	}
	if err := cfg.LoRa.Validate(); err != nil {
		return nil, fmt.Errorf("rnode on %s: %w", cfg.Path, err)
	}
	port, err := cfg.opener()(cfg.Path, lineMode(115200))
	if err != nil {
		return nil, fmt.Errorf("rnode: %w", err)
	}
	r := &RNode{cfg: cfg, echo: make(chan []byte, 32), errs: make(chan byte, 16)}
	r.init("rnode", cfg, port)
	r.run(cfg.now(), r.readLoop)
	if err := r.start(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *RNode) start(ctx context.Context) error {
	// Serial timeouts run on the wall clock; only air time follows cfg.After.
	after := AfterFunc(time.After)
	if r.cfg.RNode.BootWait > 0 {
		select {
		case <-after(r.cfg.RNode.BootWait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := r.write(rnodeDetect); err != nil {
		return err
	}
	timeout := after(r.cfg.RNode.DetectTimeout)
	var got [4]bool
	for !(got[0] && got[1] && got[2] && got[3]) {
		select {
		case f := <-r.echo:
			switch {
			case f[0] == rnCmdDetect && len(f) == 2:
				if f[1] != rnDetectResp {
					return fmt.Errorf("rnode on %s: detect answered 0x%02X, want 0x%02X: this is not an RNode firmware", r.cfg.Path, f[1], rnDetectResp)
				}
				got[0] = true
			case f[0] == rnCmdFWVersion && len(f) >= 3:
				r.info.FirmwareMajor, r.info.FirmwareMinor, got[1] = f[1], f[2], true
			case f[0] == rnCmdPlatform && len(f) >= 2:
				r.info.Platform, got[2] = f[1], true
			case f[0] == rnCmdMCU && len(f) >= 2:
				r.info.MCU, got[3] = f[1], true
			}
		case <-timeout:
			if !got[0] {
				return fmt.Errorf("rnode on %s: no answer to the detect handshake within %s: check the port, that the device runs RNode firmware (flash it with rnodeconf) and that nothing else has the port open", r.cfg.Path, r.cfg.RNode.DetectTimeout)
			}
			return fmt.Errorf("rnode on %s: detect answered but firmware version, platform or MCU did not arrive within %s: update the RNode firmware", r.cfg.Path, r.cfg.RNode.DetectTimeout)
		case <-r.done:
			return r.gone()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p := r.cfg.LoRa
	u32 := func(v int64) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
	steps := []struct {
		name string
		cmd  byte
		val  []byte
		show func([]byte) string
	}{
		{"frequency", rnCmdFrequency, u32(r.cfg.FrequencyHz), showU32("Hz")},
		{"bandwidth", rnCmdBandwidth, u32(int64(p.BandwidthHz)), showU32("Hz")},
		{"TX power", rnCmdTxPower, []byte{byte(int8(r.cfg.TxPowerDBm))}, func(b []byte) string { return fmt.Sprintf("%d dBm", int8(b[0])) }},
		{"spreading factor", rnCmdSF, []byte{byte(p.SF)}, func(b []byte) string { return fmt.Sprintf("SF%d", b[0]) }},
		{"coding rate", rnCmdCR, []byte{byte(p.CR + 4)}, func(b []byte) string { return fmt.Sprintf("4/%d", b[0]) }},
		{"radio state", rnCmdRadioState, []byte{1}, func(b []byte) string {
			return map[bool]string{true: "on", false: fmt.Sprintf("0x%02X (off)", b[0])}[b[0] == 1]
		}},
	}
	for _, s := range steps {
		if err := r.write(kissFrame(s.cmd, s.val)); err != nil {
			return err
		}
		echo, err := r.waitEcho(ctx, s.cmd, after)
		if err != nil {
			return fmt.Errorf("rnode on %s: setting %s: %w", r.cfg.Path, s.name, err)
		}
		if len(echo) != len(s.val) {
			return fmt.Errorf("rnode on %s: %s echo has %d bytes, want %d: the firmware speaks another protocol version; update it", r.cfg.Path, s.name, len(echo), len(s.val))
		}
		if !bytes.Equal(echo, s.val) {
			return fmt.Errorf("rnode on %s: firmware applied %s %s but Tern asked for %s: check the board supports this setting (band, power)", r.cfg.Path, s.name, s.show(echo), s.show(s.val))
		}
	}
	r.log.Info("rnode ready", "path", r.cfg.Path, "fw", fmt.Sprintf("%d.%d", r.info.FirmwareMajor, r.info.FirmwareMinor), "platform", r.info.Platform, "mcu", r.info.MCU, "modulation", p.String(), "freq_hz", r.cfg.FrequencyHz)
	return nil
}

func showU32(unit string) func([]byte) string {
	return func(b []byte) string {
		if len(b) != 4 {
			return fmt.Sprintf("% X", b)
		}
		return fmt.Sprintf("%d %s", binary.BigEndian.Uint32(b), unit)
	}
}

// waitEcho waits for the reply to cmd, failing on an ERROR report.
func (r *RNode) waitEcho(ctx context.Context, cmd byte, after AfterFunc) ([]byte, error) {
	timeout := after(r.cfg.RNode.DetectTimeout)
	for {
		select {
		case f := <-r.echo:
			if f[0] == cmd {
				return f[1:], nil
			}
		case code := <-r.errs:
			return nil, fmt.Errorf("firmware reported error %d: %s", code, RNodeErrorText(code))
		case <-timeout:
			return nil, fmt.Errorf("no echo within %s: the firmware did not accept the command", r.cfg.RNode.DetectTimeout)
		case <-r.done:
			return nil, r.gone()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Info returns what the detect handshake reported.
func (r *RNode) Info() RNodeInfo { return r.info }

// MaxFrame returns the largest host payload (508, or RNodeOptions.MaxFrame).
func (r *RNode) MaxFrame() int { return r.cfg.RNode.MaxFrame }

// TimeOnAir returns the air time of an n-byte host payload: the firmware
// adds a 1-byte header and splits payloads over 254 B into two frames.
func (r *RNode) TimeOnAir(n int) time.Duration {
	return RNodeTimeOnAir(r.cfg.LoRa, n)
}

// RNodeTimeOnAir is RNode.TimeOnAir for modulation p.
func RNodeTimeOnAir(p airtime.Params, n int) time.Duration {
	if n <= rnodeSplitAt {
		return p.TimeOnAir(n + 1)
	}
	return p.TimeOnAir(rnodeSplitAt+1) + p.TimeOnAir(n-rnodeSplitAt+1)
}

// Transmit sends one frame and, with WaitAirtime, waits its time on air.
func (r *RNode) Transmit(ctx context.Context, frame []byte) error {
	if len(frame) == 0 || len(frame) > r.MaxFrame() {
		return fmt.Errorf("rnode on %s: frame of %d bytes: send 1..%d bytes", r.cfg.Path, len(frame), r.MaxFrame())
	}
	if err := r.usable(); err != nil {
		return err
	}
	drain(r.errs, func(code byte) { // stale error reports
		r.log.Warn("rnode error report", "path", r.cfg.Path, "code", code, "meaning", RNodeErrorText(code))
	})
	if err := r.write(kissFrame(rnCmdData, frame)); err != nil {
		return err
	}
	if !r.cfg.RNode.WaitAirtime {
		return nil
	}
	code, failed, err := waitFor(ctx, &r.serialDevice, r.errs, r.cfg.After.orDefault()(r.TimeOnAir(len(frame))))
	if err != nil {
		return err
	}
	if !failed { // an error reported as the air time ended
		select {
		case code, failed = <-r.errs:
		default:
		}
	}
	if failed {
		return fmt.Errorf("rnode on %s: firmware reported error %d: %s", r.cfg.Path, code, RNodeErrorText(code))
	}
	return nil
}

// Receive returns the next received frame with the RSSI and SNR the
// firmware reported just before it (NaN when it reported none).
func (r *RNode) Receive(ctx context.Context) (radiolink.RxFrame, error) { return r.receive(ctx) }

// Close turns the radio off (best effort) and closes the port.
func (r *RNode) Close() error {
	r.shutdown(func() { _ = r.write(kissFrame(rnCmdRadioState, []byte{0})) })
	return nil
}

func (r *RNode) readLoop(chunks <-chan chunk) {
	var dec kissDecoder
	rssi, snr := math.NaN(), math.NaN()
	for c := range chunks {
		dec.feed(c.b, func(f []byte) {
			ev, ok := parseRNodeFrame(f)
			if !ok {
				return
			}
			switch ev.kind {
			case rnEvData:
				r.deliver(radiolink.RxFrame{Data: ev.data, RSSI: rssi, SNR: snr, At: c.at})
				rssi, snr = math.NaN(), math.NaN()
			case rnEvRSSI:
				rssi = ev.value
			case rnEvSNR:
				snr = ev.value
			case rnEvError:
				select {
				case r.errs <- ev.code:
				default:
				}
			case rnEvReady:
			case rnEvReply:
				select {
				case r.echo <- ev.data:
				default:
				}
			}
		})
	}
}

type rnEventKind int

const (
	rnEvReply rnEventKind = iota
	rnEvData
	rnEvRSSI
	rnEvSNR
	rnEvError
	rnEvReady
)

type rnEvent struct {
	kind  rnEventKind
	data  []byte // frame payload (data) or cmd+args (reply)
	value float64
	code  byte
}

// parseRNodeFrame classifies one unescaped KISS frame (command byte first).
func parseRNodeFrame(f []byte) (rnEvent, bool) {
	if len(f) == 0 {
		return rnEvent{}, false
	}
	args := f[1:]
	switch f[0] {
	case rnCmdData:
		if len(args) == 0 {
			return rnEvent{}, false
		}
		return rnEvent{kind: rnEvData, data: append([]byte(nil), args...)}, true
	case rnCmdStatRSSI:
		if len(args) != 1 {
			return rnEvent{}, false
		}
		return rnEvent{kind: rnEvRSSI, value: float64(int(args[0]) - rnodeRSSIOffset)}, true
	case rnCmdStatSNR:
		if len(args) != 1 {
			return rnEvent{}, false
		}
		return rnEvent{kind: rnEvSNR, value: float64(int8(args[0])) / 4}, true
	case rnCmdError:
		if len(args) != 1 {
			return rnEvent{}, false
		}
		return rnEvent{kind: rnEvError, code: args[0]}, true
	case rnCmdReady:
		return rnEvent{kind: rnEvReady}, true
	}
	return rnEvent{kind: rnEvReply, data: append([]byte(nil), f...)}, true
}

// kissFrame returns C0 cmd escaped(args) C0.
func kissFrame(cmd byte, args []byte) []byte {
	out := make([]byte, 0, len(args)+8)
	out = append(out, kissFEND)
	for _, b := range append([]byte{cmd}, args...) {
		switch b {
		case kissFEND:
			out = append(out, kissFESC, kissTFEND)
		case kissFESC:
			out = append(out, kissFESC, kissTFESC)
		default:
			out = append(out, b)
		}
	}
	return append(out, kissFEND)
}

// kissDecoder splits a byte stream into unescaped KISS frames. Back-to-back
// FENDs are not empty frames; frames longer than rnodeMaxKISS and frames
// with a bad escape are dropped.
type kissDecoder struct {
	buf      []byte
	esc, bad bool
}

func (d *kissDecoder) feed(p []byte, emit func([]byte)) {
	for _, b := range p {
		switch {
		case b == kissFEND:
			if len(d.buf) > 0 && !d.bad {
				emit(d.buf)
			}
			d.buf, d.esc, d.bad = d.buf[:0], false, false
		case d.esc:
			d.esc = false
			switch b {
			case kissTFEND:
				d.add(kissFEND)
			case kissTFESC:
				d.add(kissFESC)
			default:
				d.bad = true
			}
		case b == kissFESC:
			d.esc = true
		default:
			d.add(b)
		}
	}
}

func (d *kissDecoder) add(b byte) {
	if len(d.buf) >= rnodeMaxKISS {
		d.bad = true
		return
	}
	d.buf = append(d.buf, b)
}
