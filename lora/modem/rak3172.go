package modem

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ternmesh/tern/transports/radiolink"
)

// RAKOptions tunes the RAK3172 driver. The RUI3 behaviours behind these
// options are [unverified] across firmware versions.
type RAKOptions struct {
	// StopRxBeforeSend sends AT+PRECV=0 before AT+PSEND, for firmware that
	// answers AT_BUSY_ERROR to a send while continuous receive is armed.
	StopRxBeforeSend bool
	// RearmAfterSend sends AT+PRECV=65534 after +EVT:TXP2P DONE: on RUI3
	// a send ends continuous receive.
	RearmAfterSend bool
	// CommandTimeout bounds the reply to each AT command.
	CommandTimeout time.Duration
	// MaxFrame is the largest payload of AT+PSEND (255 by default).
	MaxFrame int
}

// DefaultRAKOptions returns the defaults: stop and re-arm receive around
// each send, 2 s per command, 255-byte frames.
func DefaultRAKOptions() RAKOptions {
	return RAKOptions{StopRxBeforeSend: true, RearmAfterSend: true, CommandTimeout: 2 * time.Second, MaxFrame: 255}
}

// RAKErrorText explains the RUI3 error replies.
func RAKErrorText(reply string) string {
	switch reply {
	case "AT_ERROR":
		return "the modem refused the command (AT_ERROR): is the firmware RUI3 and in P2P mode (AT+NWM=0)?"
	case "AT_PARAM_ERROR":
		return "the modem rejected a parameter (AT_PARAM_ERROR): check frequency, SF 5-12, bandwidth 125/250/500 kHz, coding rate and power"
	case "AT_BUSY_ERROR":
		return "the modem is busy (AT_BUSY_ERROR): a send or receive is still in progress"
	}
	return fmt.Sprintf("the modem answered %q", reply)
}

// ErrRAKBusy is wrapped by errors from AT_BUSY_ERROR replies.
var ErrRAKBusy = errors.New("RAK3172 busy")

// RAK3172 drives a RAK3172 module with RUI3 AT firmware in LoRa P2P mode.
type RAK3172 struct {
	serialDevice
	cfg Config

	resp   chan string // OK or an error reply
	txDone chan struct{}
	cmdMu  sync.Mutex
}

// OpenRAK3172 opens cfg.Path at 115200 8N1, selects P2P mode, sets the
// modulation and arms continuous receive.
func OpenRAK3172(ctx context.Context, cfg Config) (*RAK3172, error) {
	if cfg.RAK == (RAKOptions{}) {
		cfg.RAK = DefaultRAKOptions()
	}
	if cfg.RAK.CommandTimeout <= 0 {
		cfg.RAK.CommandTimeout = 2 * time.Second
	}
	if cfg.RAK.MaxFrame <= 0 || cfg.RAK.MaxFrame > 255 {
		cfg.RAK.MaxFrame = 255
	}
	if err := cfg.LoRa.Validate(); err != nil {
		return nil, fmt.Errorf("rak3172 on %s: %w", cfg.Path, err)
	}
	port, err := cfg.opener()(cfg.Path, lineMode(115200))
	if err != nil {
		return nil, fmt.Errorf("rak3172: %w", err)
	}
	m := &RAK3172{cfg: cfg, resp: make(chan string, 8), txDone: make(chan struct{}, 4)}
	m.init("rak3172", cfg, port)
	m.run(cfg.now(), m.readLoop)
	p := cfg.LoRa
	pre := p.Preamble
	if pre == 0 {
		pre = 8
	}
	for _, c := range []string{
		"AT",
		"AT+NWM=0",
		fmt.Sprintf("AT+P2P=%d:%d:%d:%d:%d:%d", cfg.FrequencyHz, p.SF, p.BandwidthHz/1000, p.CR-1, pre, cfg.TxPowerDBm),
		"AT+PRECV=65534",
	} {
		if err := m.command(ctx, c); err != nil {
			m.Close()
			return nil, err
		}
	}
	m.log.Info("rak3172 ready", "path", cfg.Path, "modulation", p.String(), "freq_hz", cfg.FrequencyHz)
	return m, nil
}

// command sends one AT command and waits for OK or an error reply.
func (m *RAK3172) command(ctx context.Context, c string) error {
	m.cmdMu.Lock()
	defer m.cmdMu.Unlock()
	drain(m.resp, nil) // stale replies
	if err := m.write([]byte(c + "\r\n")); err != nil {
		return err
	}
	r, ok, err := waitFor(ctx, &m.serialDevice, m.resp, time.After(m.cfg.RAK.CommandTimeout)) // serial timeout: wall clock
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("rak3172 on %s: no reply to %s within %s: check the port, 115200 baud and that the module runs RUI3 firmware", m.cfg.Path, c, m.cfg.RAK.CommandTimeout)
	case r == "OK":
		return nil
	}
	err = fmt.Errorf("rak3172 on %s: %s: %s", m.cfg.Path, c, RAKErrorText(r))
	if r == "AT_BUSY_ERROR" {
		err = fmt.Errorf("%w (%w)", err, ErrRAKBusy)
	}
	return err
}

// MaxFrame returns the largest payload (255 unless RAKOptions says less).
func (m *RAK3172) MaxFrame() int { return m.cfg.RAK.MaxFrame }

// TimeOnAir returns the LoRa time on air of an n-byte frame.
func (m *RAK3172) TimeOnAir(n int) time.Duration { return m.cfg.LoRa.TimeOnAir(n) }

// Transmit sends one frame with AT+PSEND and waits for +EVT:TXP2P DONE,
// then re-arms continuous receive (RAKOptions).
func (m *RAK3172) Transmit(ctx context.Context, frame []byte) error {
	if len(frame) == 0 || len(frame) > m.MaxFrame() {
		return fmt.Errorf("rak3172 on %s: frame of %d bytes: send 1..%d bytes", m.cfg.Path, len(frame), m.MaxFrame())
	}
	drain(m.txDone, nil)
	if m.cfg.RAK.StopRxBeforeSend {
		if err := m.command(ctx, "AT+PRECV=0"); err != nil {
			return err
		}
	}
	if err := m.command(ctx, "AT+PSEND="+strings.ToUpper(hex.EncodeToString(frame))); err != nil {
		return err
	}
	limit := 2*m.TimeOnAir(len(frame)) + m.cfg.RAK.CommandTimeout
	if _, ok, err := waitFor(ctx, &m.serialDevice, m.txDone, time.After(limit)); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("rak3172 on %s: no +EVT:TXP2P DONE within %s of AT+PSEND: the module may have reset; tern retries", m.cfg.Path, limit)
	}
	if m.cfg.RAK.RearmAfterSend {
		if err := m.command(ctx, "AT+PRECV=65534"); err != nil {
			return fmt.Errorf("re-arming receive after a send: %w", err)
		}
	}
	return nil
}

// Receive returns the next +EVT:RXP2P frame.
func (m *RAK3172) Receive(ctx context.Context) (radiolink.RxFrame, error) { return m.receive(ctx) }

// Close stops receiving (best effort) and closes the port.
func (m *RAK3172) Close() error {
	m.shutdown(func() { _ = m.write([]byte("AT+PRECV=0\r\n")) })
	return nil
}

const rakMaxLine = 1024

func (m *RAK3172) readLoop(chunks <-chan chunk) {
	var line []byte
	for c := range chunks {
		for _, b := range c.b {
			if b != '\r' && b != '\n' {
				if len(line) < rakMaxLine {
					line = append(line, b)
				}
				continue
			}
			if len(line) == 0 {
				continue
			}
			ev, err := parseRAKLine(string(line))
			line = line[:0]
			if err != nil {
				m.log.Warn("rak3172: unreadable line", "path", m.cfg.Path, "err", err)
				continue
			}
			switch ev.kind {
			case rakEvOK, rakEvError:
				select {
				case m.resp <- ev.text:
				default:
				}
			case rakEvTxDone:
				select {
				case m.txDone <- struct{}{}:
				default:
				}
			case rakEvRx:
				m.deliver(radiolink.RxFrame{Data: ev.data, RSSI: ev.rssi, SNR: ev.snr, At: c.at})
			}
		}
	}
}

type rakEventKind int

const (
	rakEvOther rakEventKind = iota
	rakEvOK
	rakEvError
	rakEvTxDone
	rakEvRx
)

type rakEvent struct {
	kind      rakEventKind
	text      string
	data      []byte
	rssi, snr float64
}

// parseRAKLine classifies one line of RUI3 output (without CR/LF).
func parseRAKLine(line string) (rakEvent, error) {
	line = strings.TrimSpace(line)
	switch {
	case line == "OK":
		return rakEvent{kind: rakEvOK, text: line}, nil
	case strings.HasPrefix(line, "AT_") && strings.HasSuffix(line, "_ERROR") || line == "AT_ERROR":
		return rakEvent{kind: rakEvError, text: line}, nil
	case line == "+EVT:TXP2P DONE":
		return rakEvent{kind: rakEvTxDone, text: line}, nil
	case strings.HasPrefix(line, "+EVT:RXP2P:"):
		parts := strings.Split(strings.TrimPrefix(line, "+EVT:RXP2P:"), ":")
		if len(parts) != 3 {
			return rakEvent{}, fmt.Errorf("receive event %q: want +EVT:RXP2P:<rssi>:<snr>:<hex>", line)
		}
		rssi, err1 := strconv.ParseFloat(parts[0], 64)
		snr, err2 := strconv.ParseFloat(parts[1], 64)
		if err1 != nil || err2 != nil || math.IsNaN(rssi) || math.IsNaN(snr) {
			return rakEvent{}, fmt.Errorf("receive event %q: RSSI and SNR must be numbers", line)
		}
		data, err := hex.DecodeString(parts[2])
		if err != nil || len(data) == 0 {
			return rakEvent{}, fmt.Errorf("receive event %q: payload is not hex", line)
		}
		return rakEvent{kind: rakEvRx, text: line, data: data, rssi: rssi, snr: snr}, nil
	}
	return rakEvent{kind: rakEvOther, text: line}, nil
}
