// Package region holds the regional radio rules that bind a LoRa transmitter
// (sub-bands, duty cycles, power limits, dwell times) as plain data, and a
// Budget that accounts airtime so that a sender never exceeds them.
//
// The rules come from ETSI EN 300 220 / CEPT ERC Recommendation 70-03
// (Europe), FCC 47 CFR 15.247 (United States) and the LoRaWAN regional
// parameters (India). They are summaries for a transmitter that sends short
// LoRa frames without listen-before-talk; national variations exist and the
// operator remains responsible for the law where the radio is.
//
// Nothing here has package-level mutable state: Lookup builds a fresh Region
// each time, so callers may modify what they get.
package region

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// SubBand is a frequency range with one set of rules.
type SubBand struct {
	// Name describes the range, e.g. "865.0-868.0 MHz".
	Name string
	// LowHz and HighHz bound the range: a channel belongs to the sub-band when
	// LowHz <= centre frequency < HighHz (see Region.Band), or when its whole
	// occupied bandwidth lies inside [LowHz, HighHz] (see Region.Channel).
	LowHz, HighHz int64
	// DutyCycle is the largest fraction of time a transmitter may be on the
	// air (0.001, 0.01, 0.1); 0 means no duty-cycle limit.
	DutyCycle float64
	// DutyWindow is the rolling window over which DutyCycle is measured; 0
	// means one hour (the ETSI observation period).
	DutyWindow time.Duration
	// MaxERPdBm is the largest radiated power, as effective radiated power
	// for ETSI bands. For FCC bands, which limit conducted power (1 W with up
	// to 6 dBi antenna gain), it holds the conducted limit.
	MaxERPdBm float64
	// DwellLimit is the longest time on one channel within DwellWindow; 0
	// means no dwell limit.
	DwellLimit time.Duration
	// DwellWindow is the rolling window of DwellLimit.
	DwellWindow time.Duration
	// LBT says whether the rules shown assume listen-before-talk. All bands
	// here are described for senders without LBT (false).
	LBT bool
}

// dutyWindow returns the effective duty-cycle window.
func (s SubBand) dutyWindow() time.Duration {
	if s.DutyWindow > 0 {
		return s.DutyWindow
	}
	return time.Hour
}

// DutyLimit returns the airtime allowed per duty window (36 s per hour at
// 1 %), or 0 when the band has no duty-cycle limit.
func (s SubBand) DutyLimit() time.Duration {
	if s.DutyCycle <= 0 || s.DutyCycle >= 1 {
		return 0
	}
	w := s.dutyWindow()
	// Round to the nanosecond: 0.01 * 1 h is exactly 36 s.
	return time.Duration(s.DutyCycle*float64(w) + 0.5)
}

func (s SubBand) contains(f int64) bool { return f >= s.LowHz && f < s.HighHz }

// Region is a named set of sub-bands, sorted by frequency.
type Region struct {
	Name  string
	Bands []SubBand
}

// Names lists the regions Lookup knows.
func Names() []string { return []string{"EU433", "EU868", "IN865", "US915"} }

// khz converts a frequency in kHz to Hz (keeps the tables readable).
func khz(k int64) int64 { return k * 1000 }

// Lookup returns the rules of a region by name (case-insensitive).
//
//	EU868: ETSI EN 300 220 / ERC 70-03 annex 1, without LBT:
//	       863.0-865.0 MHz 0.1 % 25 mW; 865.0-868.0 MHz 1 % 25 mW;
//	       868.0-868.6 MHz 1 % 25 mW; 868.7-869.2 MHz 0.1 % 25 mW;
//	       869.4-869.65 MHz 10 % 500 mW; 869.7-870.0 MHz 1 % 25 mW.
//	US915: FCC 15.247, 902-928 MHz, 1 W conducted, at most 400 ms on one
//	       channel per 20 s (the rule for hopping channels narrower than
//	       250 kHz; applied to every channel, which is conservative for 500 kHz).
//	EU433: 433.05-434.79 MHz, 10 % duty cycle, 10 mW ERP.
//	IN865: 865-867 MHz, no duty cycle, 1 W (30 dBm).
func Lookup(name string) (Region, error) {
	const mw25, mw500 = 14, 27 // dBm ERP, rounded: 25 mW = 13.98 dBm, 500 mW = 26.99 dBm
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "EU868":
		return Region{Name: "EU868", Bands: []SubBand{
			{Name: "863.0-865.0 MHz", LowHz: khz(863000), HighHz: khz(865000), DutyCycle: 0.001, MaxERPdBm: mw25},
			{Name: "865.0-868.0 MHz", LowHz: khz(865000), HighHz: khz(868000), DutyCycle: 0.01, MaxERPdBm: mw25},
			{Name: "868.0-868.6 MHz", LowHz: khz(868000), HighHz: khz(868600), DutyCycle: 0.01, MaxERPdBm: mw25},
			{Name: "868.7-869.2 MHz", LowHz: khz(868700), HighHz: khz(869200), DutyCycle: 0.001, MaxERPdBm: mw25},
			{Name: "869.4-869.65 MHz", LowHz: khz(869400), HighHz: khz(869650), DutyCycle: 0.1, MaxERPdBm: mw500},
			{Name: "869.7-870.0 MHz", LowHz: khz(869700), HighHz: khz(870000), DutyCycle: 0.01, MaxERPdBm: mw25},
		}}, nil
	case "US915":
		return Region{Name: "US915", Bands: []SubBand{
			{Name: "902-928 MHz", LowHz: khz(902000), HighHz: khz(928000), MaxERPdBm: 30,
				DwellLimit: 400 * time.Millisecond, DwellWindow: 20 * time.Second},
		}}, nil
	case "EU433":
		return Region{Name: "EU433", Bands: []SubBand{
			{Name: "433.05-434.79 MHz", LowHz: khz(433050), HighHz: khz(434790), DutyCycle: 0.1, MaxERPdBm: 10},
		}}, nil
	case "IN865":
		return Region{Name: "IN865", Bands: []SubBand{
			{Name: "865-867 MHz", LowHz: khz(865000), HighHz: khz(867000), MaxERPdBm: 30},
		}}, nil
	}
	return Region{}, fmt.Errorf("unknown radio region %q: use one of %s", name, strings.Join(Names(), ", "))
}

// Band returns the sub-band that contains the centre frequency freqHz.
func (r Region) Band(freqHz int64) (SubBand, error) {
	for _, b := range r.Bands {
		if b.contains(freqHz) {
			return b, nil
		}
	}
	return SubBand{}, fmt.Errorf("%.4f MHz is outside the legal ranges of %s: pick a frequency in %s",
		float64(freqHz)/1e6, r.Name, r.ranges())
}

// Channel returns the sub-band that holds a whole channel: the centre
// frequency freqHz plus or minus half of bandwidthHz must lie inside one
// sub-band. A 125 kHz channel at 868.0 MHz, for instance, straddles two
// sub-bands and is refused.
func (r Region) Channel(freqHz, bandwidthHz int64) (SubBand, error) {
	lo, hi := freqHz-bandwidthHz/2, freqHz+(bandwidthHz+1)/2
	for _, b := range r.Bands {
		if lo >= b.LowHz && hi <= b.HighHz {
			// FCC 15.247's dwell limit binds hopping channels narrower
			// than 250 kHz; a 500 kHz LoRa channel is a digital
			// modulation system without one.
			if b.DwellLimit > 0 && bandwidthHz >= 250_000 {
				b.DwellLimit, b.DwellWindow = 0, 0
			}
			return b, nil
		}
	}
	return SubBand{}, fmt.Errorf("channel %.4f MHz with %d kHz bandwidth (%.4f-%.4f MHz) does not fit inside one legal range of %s: pick a channel inside %s",
		float64(freqHz)/1e6, bandwidthHz/1000, float64(lo)/1e6, float64(hi)/1e6, r.Name, r.ranges())
}

func (r Region) ranges() string {
	bands := append([]SubBand(nil), r.Bands...)
	sort.Slice(bands, func(i, j int) bool { return bands[i].LowHz < bands[j].LowHz })
	parts := make([]string, 0, len(bands))
	for _, b := range bands {
		parts = append(parts, fmt.Sprintf("%.3f-%.3f MHz", float64(b.LowHz)/1e6, float64(b.HighHz)/1e6))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, ", ")
}
