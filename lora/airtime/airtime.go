// Package airtime computes how long a LoRa frame occupies the air.
//
// It implements the time-on-air formula of Semtech application note AN1200.13
// (also in the SX127x datasheets):
//
//	Tsym      = 2^SF / BW
//	Tpreamble = (Npreamble + 4.25) * Tsym
//	Npayload  = 8 + max(ceil((8*PL - 4*SF + 28 + 16*CRC - 20*IH) / (4*(SF - 2*DE))) * (CR + 4), 0)
//	ToA       = Tpreamble + Npayload * Tsym
//
// where IH is 1 for an implicit header, CR is 1..4 (coding rate 4/5..4/8) and DE
// is 1 when low-data-rate optimisation is on (mandatory when Tsym > 16 ms).
//
// Every LoRa bandwidth is 500 kHz divided by an integer, so Tsym is a whole
// number of nanoseconds and all results are exact: no floating point is used.
//
// SF5 and SF6: the SX127x supports SF6 only with an implicit header and has no
// SF5; the SX126x supports both with either header. For SF5/SF6 this package
// uses the SX126x datasheet variant of the formula (preamble + 6.25 symbols and
// no "+8" term in the numerator), since the SX126x is the only chip family
// that can send SF5 at all. An SX127x sending SF6 may differ by a symbol or
// two; use SF7 or above when the exact airtime of SX127x frames matters.
//
// The package has no state; all functions are safe for concurrent use.
package airtime

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxPayloadBytes is the largest LoRa payload (the length field is one byte).
const MaxPayloadBytes = 255

// DefaultPreamble is the preamble length used when Params.Preamble is 0.
const DefaultPreamble = 8

// ldroThreshold is the symbol time above which low-data-rate optimisation is
// switched on automatically (Semtech: mandated above 16 ms).
const ldroThreshold = 16 * time.Millisecond

// Params describes a LoRa modulation and packet format.
type Params struct {
	// SF is the spreading factor, 5..12.
	SF int
	// BandwidthHz is one of the LoRa bandwidths: 7800 (7.8125 kHz), 10400
	// (10.417 kHz), 15600 (15.625 kHz), 20800 (20.833 kHz), 31250, 41700
	// (41.667 kHz), 62500, 125000, 250000, 500000. The usual rounded spellings
	// (7810, 10420, 15630, 20830, 41670...) are accepted too; see Validate.
	BandwidthHz int
	// CR is the coding rate index: 1..4 for 4/5..4/8.
	CR int
	// Preamble is the number of programmed preamble symbols; 0 means 8.
	Preamble int
	// ImplicitHeader selects implicit (fixed-length) header mode.
	ImplicitHeader bool
	// CRC says whether the payload CRC is sent.
	CRC bool
	// LowDataRateOptimize forces LDRO on or off; nil means automatic: on
	// when the symbol time exceeds 16 ms (e.g. SF11 and SF12 at 125 kHz).
	LowDataRateOptimize *bool
}

// bwDivisor returns k such that the exact bandwidth is 500 kHz / k, or 0 when
// hz is not a LoRa bandwidth.
func bwDivisor(hz int) int {
	switch hz {
	case 7800, 7810, 7812, 7813:
		return 64
	case 10400, 10410, 10417, 10420:
		return 48
	case 15600, 15620, 15625, 15630:
		return 32
	case 20800, 20830, 20833, 20834:
		return 24
	case 31250:
		return 16
	case 41600, 41660, 41667, 41670, 41700:
		return 12
	case 62500:
		return 8
	case 125000:
		return 4
	case 250000:
		return 2
	case 500000:
		return 1
	}
	return 0
}

// Validate reports whether p describes a modulation a LoRa chip can use.
func (p Params) Validate() error {
	var errs []error
	if p.SF < 5 || p.SF > 12 {
		errs = append(errs, fmt.Errorf("spreading factor %d is out of range: use 5..12 (SF5 needs an SX126x; SF6 on an SX127x needs ImplicitHeader)", p.SF))
	}
	if bwDivisor(p.BandwidthHz) == 0 {
		errs = append(errs, fmt.Errorf("bandwidth %d Hz is not a LoRa bandwidth: use 7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000 or 500000", p.BandwidthHz))
	}
	if p.CR < 1 || p.CR > 4 {
		errs = append(errs, fmt.Errorf("coding rate index %d is out of range: use 1..4 for 4/5..4/8", p.CR))
	}
	if p.Preamble != 0 && (p.Preamble < 6 || p.Preamble > 65535) {
		errs = append(errs, fmt.Errorf("preamble of %d symbols is out of range: use 6..65535, or 0 for the default of %d", p.Preamble, DefaultPreamble))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid LoRa parameters: %w", errors.Join(errs...))
	}
	return nil
}

// SymbolTime returns 2^SF / BW, or 0 when p is invalid.
func (p Params) SymbolTime() time.Duration {
	k := bwDivisor(p.BandwidthHz)
	if k == 0 || p.SF < 5 || p.SF > 12 {
		return 0
	}
	// 2^SF * k / 500 kHz = 2^SF * k * 2000 ns.
	return time.Duration((int64(1) << p.SF) * int64(k) * 2000)
}

// LDRO reports whether low-data-rate optimisation is in effect.
func (p Params) LDRO() bool {
	if p.LowDataRateOptimize != nil {
		return *p.LowDataRateOptimize
	}
	return p.SymbolTime() > ldroThreshold
}

func (p Params) preamble() int {
	if p.Preamble == 0 {
		return DefaultPreamble
	}
	return p.Preamble
}

// PayloadSymbols returns the number of symbols after the preamble (header and
// payload) for a payload of n bytes, or 0 when p is invalid.
func (p Params) PayloadSymbols(n int) int {
	if p.Validate() != nil {
		return 0
	}
	if n < 0 {
		n = 0
	}
	num := 8*n - 4*p.SF + 28
	if p.SF < 7 {
		num -= 8 // SX126x SF5/SF6 variant
	}
	if p.CRC {
		num += 16
	}
	if p.ImplicitHeader {
		num -= 20
	}
	den := 4 * p.SF
	if p.LDRO() {
		den = 4 * (p.SF - 2)
	}
	blocks := 0
	if num > 0 {
		blocks = (num + den - 1) / den
	}
	return 8 + blocks*(p.CR+4)
}

// TimeOnAir returns the exact time on air of a frame with a payload of
// payloadBytes bytes. It returns 0 when p is invalid (check Validate first);
// a negative size counts as 0. Sizes above MaxPayloadBytes are computed with the
// same formula but cannot be sent as one frame: see TimeOnAirChecked.
func (p Params) TimeOnAir(payloadBytes int) time.Duration {
	ts := p.SymbolTime()
	if ts == 0 || p.Validate() != nil {
		return 0
	}
	// Preamble: (N + 4.25) symbols = (4N + 17)/4 symbols; Tsym is a multiple of
	// 2000 ns so the division is exact. SF5/SF6 (SX126x) use N + 6.25.
	quarter := int64(4*p.preamble() + 17)
	if p.SF < 7 {
		quarter = int64(4*p.preamble() + 25)
	}
	pre := time.Duration(quarter) * ts / 4
	return pre + time.Duration(p.PayloadSymbols(payloadBytes))*ts
}

// TimeOnAirChecked is TimeOnAir with errors for invalid parameters and for
// payload sizes outside 0..MaxPayloadBytes.
func (p Params) TimeOnAirChecked(payloadBytes int) (time.Duration, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if payloadBytes < 0 || payloadBytes > MaxPayloadBytes {
		return 0, fmt.Errorf("payload of %d bytes does not fit one LoRa frame: split it into frames of at most %d bytes", payloadBytes, MaxPayloadBytes)
	}
	return p.TimeOnAir(payloadBytes), nil
}

// BitRate returns the nominal bit rate SF * BW / 2^SF * 4/(4+CR) in bits per
// second (the figure radio calculators quote; it ignores preamble, header and
// LDRO). It returns 0 when p is invalid.
func (p Params) BitRate() float64 {
	ts := p.SymbolTime()
	if ts == 0 || p.CR < 1 || p.CR > 4 {
		return 0
	}
	return float64(p.SF) / ts.Seconds() * 4 / float64(4+p.CR)
}

// MaxPayload returns the largest payload of one frame: 255 bytes.
func (p Params) MaxPayload() int { return MaxPayloadBytes }

// String formats p like "SF11/250kHz/CR4-5".
func (p Params) String() string {
	return fmt.Sprintf("SF%d/%gkHz/CR4-%d", p.SF, float64(p.BandwidthHz)/1000, 4+p.CR)
}

// PresetNames lists the names Preset accepts, fastest first.
func PresetNames() []string {
	return []string{"ShortTurbo", "ShortFast", "ShortSlow", "MediumFast", "MediumSlow", "LongFast", "LongModerate", "LongSlow"}
}

// Preset returns the modulation of a named modem preset. The names and
// modulations are Meshtastic's (SF/bandwidth/coding rate of its modem presets):
//
//	ShortTurbo   SF7  500 kHz 4/5
//	ShortFast    SF7  250 kHz 4/5   (about 10.94 kbit/s)
//	ShortSlow    SF8  250 kHz 4/5
//	MediumFast   SF9  250 kHz 4/5   (about 3.52 kbit/s)
//	MediumSlow   SF10 250 kHz 4/5
//	LongFast     SF11 250 kHz 4/5   (about 1.07 kbit/s)
//	LongModerate SF11 125 kHz 4/8
//	LongSlow     SF12 125 kHz 4/8
//
// Presets use an explicit header, CRC on, automatic LDRO and a 16-symbol
// preamble (Meshtastic's preamble length). Matching names are
// case-insensitive. Only the modulation is shared: Tern frames are not
// Meshtastic packets.
func Preset(name string) (Params, error) {
	type m struct{ sf, bw, cr int }
	var v m
	switch strings.ToLower(name) {
	case "shortturbo":
		v = m{7, 500000, 1}
	case "shortfast":
		v = m{7, 250000, 1}
	case "shortslow":
		v = m{8, 250000, 1}
	case "mediumfast":
		v = m{9, 250000, 1}
	case "mediumslow":
		v = m{10, 250000, 1}
	case "longfast":
		v = m{11, 250000, 1}
	case "longmoderate":
		v = m{11, 125000, 4}
	case "longslow":
		v = m{12, 125000, 4}
	default:
		return Params{}, fmt.Errorf("unknown LoRa preset %q: use one of %v", name, PresetNames())
	}
	return Params{SF: v.sf, BandwidthHz: v.bw, CR: v.cr, Preamble: 16, CRC: true}, nil
}
