package modem

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
)

// Kind names a modem family; it is the URL scheme.
type Kind string

// The supported modem kinds.
const (
	KindRNode   Kind = "rnode"
	KindE22     Kind = "e22"
	KindRAK3172 Kind = "rak3172"
)

// Config is everything a driver needs; ParseURL fills it from a daemon URL.
// Fields a driver does not use are ignored.
type Config struct {
	Kind Kind
	Path string // serial device, e.g. /dev/ttyUSB0
	// FrequencyHz is the centre frequency.
	FrequencyHz int64
	// LoRa is the modulation (RNode, RAK3172). For the E22 it is derived
	// from the air rate (E22AirParams) and only used for time on air.
	LoRa airtime.Params
	// Preset is the airtime.Preset name LoRa came from, if any.
	Preset string
	// TxPowerDBm is the transmit power.
	TxPowerDBm int

	E22   E22Settings
	RNode RNodeOptions
	RAK   RAKOptions

	// Open opens the serial port; nil means SerialOpener.
	Open PortOpener
	// After paces waits (time on air, line gaps); nil means time.After.
	After AfterFunc
	// Now stamps received frames; nil means time.Now.
	Now func() time.Time
	// Logger receives driver events; nil discards them.
	Logger *slog.Logger
}

func (c *Config) opener() PortOpener {
	if c.Open == nil {
		return SerialOpener
	}
	return c.Open
}

func (c *Config) now() func() time.Time {
	if c.Now == nil {
		return time.Now
	}
	return c.Now
}

// Open starts the driver for cfg.Kind.
func Open(ctx context.Context, cfg Config) (Modem, error) {
	switch cfg.Kind {
	case KindRNode:
		return OpenRNode(ctx, cfg)
	case KindE22:
		return OpenE22(ctx, cfg)
	case KindRAK3172:
		return OpenRAK3172(ctx, cfg)
	}
	return nil, fmt.Errorf("unknown modem kind %q: use rnode, e22 or rak3172", cfg.Kind)
}

// ParseURL parses a modem URL:
//
//	rnode:///dev/ttyUSB0?freq=869.525&bw=250&sf=11&cr=5&txp=14
//	e22:///dev/ttyS0?freq=868.125&air=2.4k&addr=0x0001&m0=22&m1=27
//	rak3172:///dev/ttyUSB1?freq=869.525&sf=9&bw=125&txp=14
//
// Common keys: freq (MHz, required), txp (dBm), preset (an airtime preset
// name such as LongFast; explicit sf/bw/cr override it), sf (5-12), bw
// (kHz), cr (5-8 for 4/5..4/8), preamble (symbols).
// E22 keys: air (0.3k 1.2k 2.4k 4.8k 9.6k 19.2k 38.4k 62.5k), addr, netid,
// fixed (0/1), rssi (0/1, append the RSSI byte; default 1), sub (240, 128,
// 64, 32), baud (UART rate in normal mode), m0, m1, aux (BCM GPIO numbers;
// absent means the mode is set by jumpers), persist (0/1: C0 save instead of
// C2 volatile write), gap (line gap that ends a packet, e.g. 20ms).
// RNode keys: maxframe (254 or 508), bootwait (e.g. 2s). RAK3172 keys:
// rearm (0/1), stoprx (0/1).
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("modem URL %q: %w", s, err)
	}
	cfg := Config{Kind: Kind(strings.ToLower(u.Scheme)), Path: u.Path}
	switch cfg.Kind {
	case KindRNode, KindE22, KindRAK3172:
	default:
		return Config{}, fmt.Errorf("modem URL %q: unknown scheme %q: use rnode://, e22:// or rak3172://", s, u.Scheme)
	}
	if cfg.Path == "" && u.Opaque != "" {
		cfg.Path = u.Opaque
	}
	if u.Host != "" {
		return Config{}, fmt.Errorf("modem URL %q: put the device path after three slashes, e.g. %s:///dev/ttyUSB0", s, cfg.Kind)
	}
	if cfg.Path == "" {
		return Config{}, fmt.Errorf("modem URL %q: no serial device path: write e.g. %s:///dev/ttyUSB0", s, cfg.Kind)
	}
	q := u.Query()
	bad := func(key, why string) error {
		return fmt.Errorf("modem URL %q: %s=%q: %s", s, key, q.Get(key), why)
	}
	integer := func(key string, lo, hi int) (int, bool, error) {
		v, ok, err := airtime.QueryInt(q, key, lo, hi)
		if err != nil {
			return 0, false, fmt.Errorf("modem URL %q: %w", s, err)
		}
		return v, ok, nil
	}
	flag := func(key string, def bool) (bool, error) {
		switch q.Get(key) {
		case "":
			return def, nil
		case "1", "true", "on", "yes":
			return true, nil
		case "0", "false", "off", "no":
			return false, nil
		}
		return false, bad(key, "want 0 or 1")
	}
	known := map[string]bool{"freq": true, "txp": true, "preset": true, "sf": true, "bw": true, "cr": true, "preamble": true}
	for _, k := range map[Kind][]string{
		KindE22:     {"air", "addr", "netid", "fixed", "rssi", "sub", "baud", "m0", "m1", "aux", "persist", "gap"},
		KindRNode:   {"maxframe", "bootwait"},
		KindRAK3172: {"rearm", "stoprx"},
	}[cfg.Kind] {
		known[k] = true
	}
	for k := range q {
		if !known[k] {
			return Config{}, fmt.Errorf("modem URL %q: unknown option %q for %s", s, k, cfg.Kind)
		}
	}

	freq, lora, preset, err := airtime.ParseChannel(q)
	if err != nil {
		return Config{}, fmt.Errorf("modem URL %q: %w", s, err)
	}
	if preset != "" && cfg.Kind == KindE22 {
		return Config{}, bad("preset", "the E22 picks its modulation from its air rate: use air=2.4k etc.")
	}
	cfg.FrequencyHz, cfg.LoRa, cfg.Preset = freq, lora, preset

	cfg.TxPowerDBm = 14
	if cfg.Kind == KindE22 {
		cfg.TxPowerDBm = 22 // the module's factory power
	}
	if v, ok, err := integer("txp", -9, 30); err != nil {
		return Config{}, err
	} else if ok {
		cfg.TxPowerDBm = v
	}
	if cfg.Kind != KindE22 {
		if err := cfg.LoRa.Validate(); err != nil {
			return Config{}, fmt.Errorf("modem URL %q: %w", s, err)
		}
		if cfg.Kind == KindRAK3172 {
			switch cfg.LoRa.BandwidthHz {
			case 125000, 250000, 500000:
			default:
				return Config{}, bad("bw", "the RAK3172 P2P mode takes 125, 250 or 500 kHz")
			}
		}
	}

	switch cfg.Kind {
	case KindRNode:
		cfg.RNode = DefaultRNodeOptions()
		if v, ok, err := integer("maxframe", 1, 508); err != nil {
			return Config{}, err
		} else if ok {
			cfg.RNode.MaxFrame = v
		}
		if v := q.Get("bootwait"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return Config{}, bad("bootwait", "want a duration such as 2s")
			}
			cfg.RNode.BootWait = d
		}
	case KindRAK3172:
		cfg.RAK = DefaultRAKOptions()
		if cfg.RAK.RearmAfterSend, err = flag("rearm", cfg.RAK.RearmAfterSend); err != nil {
			return Config{}, err
		}
		if cfg.RAK.StopRxBeforeSend, err = flag("stoprx", cfg.RAK.StopRxBeforeSend); err != nil {
			return Config{}, err
		}
	case KindE22:
		if cfg.E22, err = parseE22(q, cfg.FrequencyHz, cfg.TxPowerDBm, integer, flag, bad); err != nil {
			return Config{}, err
		}
		cfg.LoRa = E22AirParams(cfg.E22.AirRate)
	}
	return cfg, nil
}

func parseE22(q url.Values, freqHz int64, txp int,
	integer func(string, int, int) (int, bool, error),
	flag func(string, bool) (bool, error),
	bad func(string, string) error) (E22Settings, error) {
	e := DefaultE22Settings()
	base := int64(850125000)
	if freqHz < 600000000 {
		base, e.Band400 = 410125000, true
	}
	off := freqHz - base
	if off < 0 || off%1000000 != 0 || off/1000000 > 83 {
		lo, hi := float64(base)/1e6, float64(base)/1e6+83
		return e, bad("freq", fmt.Sprintf("an E22 tunes %.3f + CH MHz, CH 0-83: pick %.3f..%.3f in 1 MHz steps", lo, lo, hi))
	}
	e.Channel = byte(off / 1000000)
	if v := q.Get("air"); v != "" {
		code, ok := e22AirCode(v)
		if !ok {
			return e, bad("air", "want one of 0.3k 1.2k 2.4k 4.8k 9.6k 19.2k 38.4k 62.5k")
		}
		e.AirRate = code
	}
	if v, ok, err := integer("addr", 0, 0xFFFF); err != nil {
		return e, err
	} else if ok {
		e.Address = uint16(v)
	}
	if v, ok, err := integer("netid", 0, 255); err != nil {
		return e, err
	} else if ok {
		e.NetID = byte(v)
	}
	var err error
	if e.Fixed, err = flag("fixed", e.Fixed); err != nil {
		return e, err
	}
	if e.RSSIByte, err = flag("rssi", e.RSSIByte); err != nil {
		return e, err
	}
	if e.Persist, err = flag("persist", e.Persist); err != nil {
		return e, err
	}
	if v, ok, err := integer("sub", 32, 240); err != nil {
		return e, err
	} else if ok {
		if _, ok := e22SubCode(v); !ok {
			return e, bad("sub", "want 240, 128, 64 or 32")
		}
		e.SubPacket = v
	}
	if v, ok, err := integer("baud", 1200, 115200); err != nil {
		return e, err
	} else if ok {
		if _, ok := e22BaudCode(v); !ok {
			return e, bad("baud", "want 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200")
		}
		e.UARTBaud = v
	}
	e.PowerDBm = txp
	if _, ok := e22PowerCode(txp); !ok {
		return e, fmt.Errorf("e22: txp=%d: an E22-xxxT22 sets 22, 17, 13 or 10 dBm", txp)
	}
	for _, p := range []struct {
		key string
		dst *int
	}{{"m0", &e.M0}, {"m1", &e.M1}, {"aux", &e.AUX}} {
		if v, ok, err := integer(p.key, 0, 63); err != nil {
			return e, err
		} else if ok {
			*p.dst = v
		}
	}
	if (e.M0 < 0) != (e.M1 < 0) {
		return e, fmt.Errorf("e22: give both m0 and m1 GPIO numbers, or neither when the mode is set by jumpers")
	}
	if v := q.Get("gap"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > time.Second {
			return e, bad("gap", "want a duration such as 20ms")
		}
		e.FrameGap = d
	}
	return e, nil
}
