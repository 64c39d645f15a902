package modememu

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/radiosim"
)

// RAKConfig sets up an emulated RAK3172 (RUI3 AT firmware).
type RAKConfig struct {
	Name string
	X, Y float64
	// KeepRxAfterSend keeps continuous receive armed after a send. RUI3
	// ends it [unverified], so the default (false) needs a re-arm.
	KeepRxAfterSend bool
	// BusyWhileRx answers AT_BUSY_ERROR to AT+PSEND while receive is armed
	// [unverified: firmware-dependent].
	BusyWhileRx bool
}

// RAK3172 emulates a RAK3172 in LoRa P2P mode: AT+NWM, AT+P2P, AT+PSEND,
// AT+PRECV and the +EVT:TXP2P DONE / +EVT:RXP2P events, refusing bad
// parameters with AT_PARAM_ERROR.
type RAK3172 struct {
	*base
	cfg RAKConfig
	air *Air

	mu      sync.Mutex
	p2p     bool
	params  airtime.Params
	freq    int64
	power   int
	radio   *radiosim.Radio
	rxOn    bool
	sending bool
	// Commands records every command line received, for tests.
	commands []string
}

// NewRAK3172 starts an emulated RAK3172 on air.
func NewRAK3172(air *Air, cfg RAKConfig) (*RAK3172, error) {
	b, err := newBase()
	if err != nil {
		return nil, err
	}
	e := &RAK3172{base: b, cfg: cfg, air: air, freq: 868000000, power: 14,
		params: airtime.Params{SF: 7, BandwidthHz: 125000, CR: 1, Preamble: 8, CRC: true}}
	go e.serve()
	return e, nil
}

// Commands returns the command lines received so far.
func (e *RAK3172) Commands() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.commands...)
}

func (e *RAK3172) serve() {
	buf := make([]byte, 512)
	var line []byte
	for {
		n, err := e.pty.Master.Read(buf)
		if err != nil {
			return
		}
		for _, c := range buf[:n] {
			if c == '\r' || c == '\n' {
				if len(line) > 0 {
					e.reply(e.command(string(line)))
				}
				line = line[:0]
				continue
			}
			if len(line) < 1200 {
				line = append(line, c)
			}
		}
	}
}

func (e *RAK3172) reply(s string) { e.send([]byte(s + "\r\n")) }

func (e *RAK3172) command(line string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.commands = append(e.commands, line)
	cmd, arg, _ := strings.Cut(line, "=")
	switch strings.ToUpper(cmd) {
	case "AT":
		return "OK"
	case "AT+NWM":
		switch arg {
		case "0":
			e.p2p = true
		case "1":
			e.p2p = false
		default:
			return "AT_PARAM_ERROR"
		}
		return "OK"
	case "AT+P2P":
		if !e.p2p {
			return "AT_ERROR"
		}
		if arg == "?" {
			return fmt.Sprintf("AT+P2P=%d:%d:%d:%d:%d:%d\r\nOK", e.freq, e.params.SF, e.params.BandwidthHz/1000, e.params.CR-1, e.params.Preamble, e.power)
		}
		f := strings.Split(arg, ":")
		if len(f) != 6 {
			return "AT_PARAM_ERROR"
		}
		var v [6]int64
		for i, s := range f {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return "AT_PARAM_ERROR"
			}
			v[i] = n
		}
		p := airtime.Params{SF: int(v[1]), BandwidthHz: int(v[2]) * 1000, CR: int(v[3]) + 1, Preamble: int(v[4]), CRC: true}
		if v[0] < 150e6 || v[0] > 960e6 || v[1] < 5 || v[1] > 12 || (v[2] != 125 && v[2] != 250 && v[2] != 500) ||
			v[3] < 0 || v[3] > 3 || v[4] < 2 || v[4] > 65535 || v[5] < 5 || v[5] > 22 || p.Validate() != nil {
			return "AT_PARAM_ERROR"
		}
		r, err := e.air.Channel.AddRadio(radiosim.RadioConfig{Name: e.radioName(e.cfg.Name), Params: p, FrequencyHz: v[0],
			TxPowerDBm: float64(v[5]), X: e.cfg.X, Y: e.cfg.Y, OnReceive: e.heard})
		if err != nil {
			return "AT_ERROR"
		}
		e.params, e.freq, e.power, e.radio = p, v[0], int(v[5]), r
		return "OK"
	case "AT+PRECV":
		if !e.p2p || e.radio == nil {
			return "AT_ERROR"
		}
		n, err := strconv.ParseUint(arg, 10, 32)
		if err != nil || n > 65535 {
			return "AT_PARAM_ERROR"
		}
		if e.sending {
			return "AT_BUSY_ERROR"
		}
		e.rxOn = n != 0 // timed windows are treated as continuous
		return "OK"
	case "AT+PSEND":
		if !e.p2p || e.radio == nil {
			return "AT_ERROR"
		}
		data, err := hex.DecodeString(arg)
		if err != nil || len(data) == 0 || len(data) > 255 {
			return "AT_PARAM_ERROR"
		}
		if e.sending || (e.rxOn && e.cfg.BusyWhileRx) {
			return "AT_BUSY_ERROR"
		}
		done, err := e.radio.Transmit(data)
		if err != nil {
			return "AT_BUSY_ERROR"
		}
		e.sending = true
		if !e.cfg.KeepRxAfterSend {
			e.rxOn = false
		}
		e.air.Clock.At(done, func() {
			e.mu.Lock()
			e.sending = false
			e.mu.Unlock()
			e.reply("+EVT:TXP2P DONE")
		})
		return "OK"
	}
	return "AT_ERROR"
}

func (e *RAK3172) heard(f radiosim.Frame) {
	e.mu.Lock()
	on := e.rxOn
	e.mu.Unlock()
	if !on {
		return
	}
	e.reply(fmt.Sprintf("+EVT:RXP2P:%d:%d:%s", int(math.Round(f.RSSI)), int(math.Round(f.SNR)), strings.ToUpper(hex.EncodeToString(f.Data))))
}
