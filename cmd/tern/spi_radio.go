package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ternmesh/tern/lora/chipdev"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ternmesh/tern/hw"
	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/region"
	"github.com/ternmesh/tern/lora/sx126x"
	"github.com/ternmesh/tern/lora/sx127x"
	"github.com/ternmesh/tern/node"
	"github.com/ternmesh/tern/transports/radiolink"
)

// spiScheme is the link URL scheme of a LoRa chip on an SPI HAT:
//
//	lora+spi://waveshare-sx1262?freq=869.525&bw=250&sf=11&cr=5&txp=14
//	lora+spi://adafruit-rfm9x?freq=869.525&preset=LongFast&reset=17&irq=4
//
// The host is a board name (see `tern hw list`). Query keys: freq (MHz,
// required), preset (a modem preset name such as LongFast; explicit sf, bw,
// cr and preamble override it), sf (5-12), bw (kHz), cr (5-8 for 4/5..4/8),
// preamble (symbols), txp (dBm, default 14), sync (sync word: 0x12 private,
// the default, or 0x34 LoRaWAN; the SX126x spelling 0x1424 is accepted
// too), region (EU868, US915...: the rules to apply; by default the region
// whose spectrum holds freq), plus the board overrides hw.Lookup knows
// (spi, tcxo, rfswitch and the pins: cs, reset, irq, busy, dio1, dio2,
// ant_sw).
const spiScheme = "lora+spi"

// boardKeys are the query keys that belong to hw.Lookup.
func boardKeys() []string {
	return []string{"spi", "serial", "tcxo", "rfswitch",
		hw.PinCS, hw.PinReset, hw.PinIRQ, hw.PinBusy, hw.PinDIO1, hw.PinDIO2, hw.PinAntSW, hw.PinM0, hw.PinM1}
}

// radioKeys are the query keys of the radio settings.
func radioKeys() []string {
	return []string{"freq", "preset", "sf", "bw", "cr", "preamble", "txp", "sync", "region"}
}

// spiRadio is a parsed lora+spi:// URL: the board with its pins, and the
// radio settings checked against the region's rules.
type spiRadio struct {
	Board       hw.Board
	FrequencyHz int64
	LoRa        airtime.Params
	TxPowerDBm  int
	// SyncWord in the SX127x spelling (one byte, 0x12 by default).
	SyncWord byte
	// Band is the legal sub-band the channel lies in.
	Band region.SubBand
	// Region is the region named in the URL ("" when found from freq).
	Region string
}

// spiEnv is what opening an SPI radio touches: the machine's SPI and GPIO
// (production: hw.NewPeriph) and the clock the chip drivers wait on.
// Tests inject emulated chips and their virtual clock.
type spiEnv struct {
	opener func() (hw.Opener, error)
	now    func() time.Time
	sleep  func(time.Duration)
}

// periphOpener opens the Pi's real SPI ports and GPIO lines.
func periphOpener() (hw.Opener, error) { return hw.NewPeriph() }

// newSPIOpener returns the RadioOpener of lora+spi:// links. A nil
// env.opener means the real hardware.
func newSPIOpener(log *slog.Logger, env spiEnv) node.RadioOpener {
	if env.opener == nil {
		env.opener = periphOpener
	}
	return func(ctx context.Context, u *url.URL) (radiolink.Device, radiolink.Config, error) {
		return openSPIRadio(ctx, u, log, env)
	}
}

// openSPIRadio parses u, applies the region's airtime limits, opens the
// board and starts the driver of its chip.
func openSPIRadio(ctx context.Context, u *url.URL, log *slog.Logger, env spiEnv) (radiolink.Device, radiolink.Config, error) {
	r, err := parseSPIRadio(u)
	if err != nil {
		return nil, radiolink.Config{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, radiolink.Config{}, err
	}
	budget, err := loraBudget(r.Region, r.FrequencyHz, int64(r.LoRa.BandwidthHz))
	if err != nil {
		return nil, radiolink.Config{}, err
	}
	o, err := env.opener()
	if err != nil {
		return nil, radiolink.Config{}, fmt.Errorf("LoRa board %s: %w", r.Board.Name, err)
	}
	h, err := hw.Open(r.Board, o) // its errors name the board
	if err != nil {
		return nil, radiolink.Config{}, fmt.Errorf("LoRa HAT: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("board", r.Board.Name)
	var chip spiChip
	switch r.Board.Chip {
	case hw.SX1262:
		chip, err = sx126x.Open(h.Conn, sx126x.Pins{Reset: h.Reset, Busy: h.Busy, DIO1: h.IRQ}, sx126x.Config{
			FrequencyHz: r.FrequencyHz, Modulation: r.LoRa, TxPowerDBm: r.TxPowerDBm,
			SyncWord:  sx126xSync(r.SyncWord),
			TCXOVolts: r.Board.TCXOVolts, DIO2RFSwitch: r.Board.DIO2RFSwitch,
			Timing: chipdev.Timing{Now: env.now, Sleep: env.sleep, Logger: log}})
	case hw.SX1276:
		chip, err = sx127x.Open(h.Conn, sx127x.Pins{Reset: h.Reset, DIO0: h.IRQ}, sx127x.Config{
			FrequencyHz: r.FrequencyHz, Modulation: r.LoRa, TxPowerDBm: r.TxPowerDBm, SyncWord: r.SyncWord,
			Timing: chipdev.Timing{Now: env.now, Sleep: env.sleep, Logger: log}})
	default:
		err = fmt.Errorf("chip %s has no SPI driver", r.Board.Chip)
	}
	if err != nil {
		h.Close()
		return nil, radiolink.Config{}, fmt.Errorf("LoRa board %s (%s on %s): %w%s", r.Board.Name, r.Board.Chip, r.Board.SPI, err, noChipHint(err))
	}
	log.Info("LoRa HAT opened", "chip", r.Board.Chip, "spi", r.Board.SPI, "freq_hz", r.FrequencyHz,
		"modulation", r.LoRa.String(), "txp_dbm", r.TxPowerDBm, "band", r.Band.Name, "duty_cycle", r.Band.DutyCycle)
	dev := &spiDevice{spiChip: chip, handle: h}
	return dev, radiolink.Config{Budget: budget, Name: spiScheme + ":" + r.Board.Name}, nil
}

// noChipHint adds what to check when the chip does not answer at all.
func noChipHint(err error) string {
	if errors.Is(err, sx126x.ErrNoChip) || errors.Is(err, sx127x.ErrNoChip) {
		return " (run `tern hw probe BOARD` to check the wiring; a HAT clone may need pin overrides such as ?reset=N&irq=N)"
	}
	return ""
}

// spiChip is what both chip drivers offer.
type spiChip interface {
	radiolink.Device
	radiolink.AirtimeModel
	radiolink.CarrierSense
	LinkUp() (bool, error)
}

// spiDevice is a chip driver that also releases its SPI port on Close.
type spiDevice struct {
	spiChip
	handle *hw.Handle
}

// Close stops the driver, then releases the board's SPI port.
func (d *spiDevice) Close() error {
	err := d.spiChip.Close()
	if e := d.handle.Close(); e != nil && err == nil {
		err = e
	}
	return err
}

// sx126xSync spells an SX127x sync word 0xXY as the SX126x's 0xX4Y4.
func sx126xSync(b byte) uint16 {
	return uint16(b&0xF0)<<8 | 0x0400 | uint16(b&0x0F)<<4 | 0x0004
}

// parseSPIRadio parses a lora+spi:// URL without touching the hardware:
// the board and pin overrides, the radio settings, and the region's rules
// for the channel and the power.
func parseSPIRadio(u *url.URL) (spiRadio, error) {
	var r spiRadio
	raw := u.Redacted()
	if !strings.EqualFold(u.Scheme, spiScheme) {
		return r, fmt.Errorf("LoRa URL %q: scheme %q is not %s://", raw, u.Scheme, spiScheme)
	}
	name := u.Host
	if name == "" {
		name = strings.TrimPrefix(u.Opaque, "//")
	}
	if name == "" || strings.Trim(u.Path, "/") != "" {
		return r, fmt.Errorf("LoRa URL %q: name the board after %s://, e.g. %s://waveshare-sx1262?freq=869.525 (known boards: %s)",
			raw, spiScheme, spiScheme, strings.Join(hw.Names(), ", "))
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return r, fmt.Errorf("LoRa URL %q: bad query: %w (write settings like ?freq=869.525&sf=11)", raw, err)
	}
	boardQ := url.Values{}
	for k, v := range q {
		switch {
		case slices.Contains(boardKeys(), k):
			boardQ[k] = v
		case slices.Contains(radioKeys(), k):
		default:
			return r, fmt.Errorf("LoRa URL %q: unknown option %q: use %s, or a board override (%s)",
				raw, k, strings.Join(radioKeys(), ", "), strings.Join(boardKeys(), ", "))
		}
	}
	spec := name
	if len(boardQ) > 0 {
		spec += "?" + boardQ.Encode()
	}
	if r.Board, err = hw.Lookup(spec); err != nil {
		return r, fmt.Errorf("LoRa URL %q: %w", raw, err)
	}
	if r.Board.SPI == "" {
		return r, fmt.Errorf("LoRa URL %q: board %s is a serial module (%s on %s), not an SPI HAT: use e22://%s?freq=... instead",
			raw, r.Board.Name, r.Board.Chip, r.Board.Serial, r.Board.Serial)
	}
	bad := func(key, why string) error {
		return fmt.Errorf("LoRa URL %q: %s=%q: %s", raw, key, q.Get(key), why)
	}
	integer := func(key string, lo, hi int) (int, bool, error) {
		v, ok, err := airtime.QueryInt(q, key, lo, hi)
		if err != nil {
			return 0, false, fmt.Errorf("LoRa URL %q: %w", raw, err)
		}
		return v, ok, nil
	}

	if r.FrequencyHz, r.LoRa, _, err = airtime.ParseChannel(q); err != nil {
		return r, fmt.Errorf("LoRa URL %q: %w", raw, err)
	}
	if err := r.LoRa.Validate(); err != nil {
		return r, fmt.Errorf("LoRa URL %q: %w", raw, err)
	}
	if r.Board.Chip == hw.SX1276 && r.LoRa.SF < 6 {
		return r, bad("sf", fmt.Sprintf("the %s on %s goes down to SF6 only (SF5 needs an SX126x)", r.Board.Chip, r.Board.Name))
	}
	if r.Board.Chip == hw.SX1276 && r.LoRa.SF == 6 {
		return r, bad("sf", "SF6 on an SX127x needs implicit-header frames, which Tern does not send: use SF7 or more")
	}

	lo, hi := -9, 22
	if r.Board.Chip == hw.SX1276 {
		lo, hi = 2, 20 // PA_BOOST
	}
	r.TxPowerDBm = 14
	if v, ok, err := integer("txp", lo, hi); err != nil {
		return r, err
	} else if ok {
		r.TxPowerDBm = v
	}

	r.SyncWord = 0x12
	if v := q.Get("sync"); v != "" {
		n, err := strconv.ParseUint(v, 0, 16)
		switch {
		case err != nil:
			return r, bad("sync", "want a sync word such as 0x12 (private) or 0x34 (LoRaWAN)")
		case n <= 0xFF:
			r.SyncWord = byte(n)
		case n&0x0F0F == 0x0404:
			r.SyncWord = byte(n>>8&0xF0 | n>>4&0x0F)
		default:
			return r, bad("sync", "an SX126x sync word reads 0xX4Y4 (0x1424 is 0x12 on an SX127x): give the one-byte form, e.g. 0x12")
		}
	}

	r.Region = strings.ToUpper(q.Get("region"))
	budget, err := loraBudget(r.Region, r.FrequencyHz, int64(r.LoRa.BandwidthHz))
	if err != nil {
		return r, fmt.Errorf("LoRa URL %q: %w", raw, err)
	}
	r.Band = budget.Band()
	if r.Band.MaxERPdBm != 0 && float64(r.TxPowerDBm) > r.Band.MaxERPdBm {
		return r, bad("txp", fmt.Sprintf("%d dBm is above the %.0f dBm allowed in %s: lower txp", r.TxPowerDBm, r.Band.MaxERPdBm, r.Band.Name))
	}
	return r, nil
}
