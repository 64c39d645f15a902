package airtime

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
)

// Link URLs name a LoRa channel the same way whatever the radio
// (lora+spi://, rnode://, rak3172://, e22://): this is the one parser for
// those keys, so a setting means the same everywhere.
//
//	freq      centre frequency in MHz (required), e.g. 869.525
//	preset    a Preset name (LongFast, ...); explicit keys below override it
//	sf        spreading factor 5..12
//	bw        bandwidth in kHz, e.g. 125 or 250
//	cr        coding rate 5..8 (4/5..4/8)
//	preamble  preamble symbols 6..65535

// ValueError is a bad value for one URL key.
type ValueError struct{ Key, Value, Why string }

func (e *ValueError) Error() string { return fmt.Sprintf("%s=%q: %s", e.Key, e.Value, e.Why) }

// QueryInt reads key as a whole number in [lo, hi] (decimal or 0x hex);
// ok is false when the key is absent.
func QueryInt(q url.Values, key string, lo, hi int) (v int, ok bool, err error) {
	s := q.Get(key)
	if s == "" {
		return 0, false, nil
	}
	n, perr := strconv.ParseInt(s, 0, 64)
	if perr != nil || n < int64(lo) || n > int64(hi) {
		return 0, false, &ValueError{key, s, fmt.Sprintf("want a whole number from %d to %d", lo, hi)}
	}
	return int(n), true, nil
}

// QueryFloat reads key as a finite number; ok is false when it is absent.
func QueryFloat(q url.Values, key string) (v float64, ok bool, err error) {
	s := q.Get(key)
	if s == "" {
		return 0, false, nil
	}
	f, perr := strconv.ParseFloat(s, 64)
	if perr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, &ValueError{key, s, "not a number"}
	}
	return f, true, nil
}

// ChannelKeys are the keys ParseChannel reads.
var channelKeys = []string{"freq", "preset", "sf", "bw", "cr", "preamble"}

// ChannelKeys lists the keys ParseChannel reads.
func ChannelKeys() []string { return append([]string(nil), channelKeys...) }

// ParseChannel reads the channel keys of a link URL: the frequency in Hz,
// the modulation (SF9, 125 kHz, 4/5, 8 symbols, CRC on unless a preset or
// the keys say otherwise) and the preset name if one was given. It does not
// Validate the result: radios differ in what they accept.
func ParseChannel(q url.Values) (freqHz int64, p Params, preset string, err error) {
	f, ok, err := QueryFloat(q, "freq")
	if err != nil {
		return 0, p, "", err
	}
	if !ok {
		return 0, p, "", fmt.Errorf("freq is required, in MHz (e.g. freq=869.525)")
	}
	if f < 137 || f > 1020 {
		return 0, p, "", &ValueError{"freq", q.Get("freq"), "want MHz between 137 and 1020 (e.g. 869.525)"}
	}
	freqHz = int64(math.Round(f * 1e6))
	p = Params{SF: 9, BandwidthHz: 125000, CR: 1, Preamble: DefaultPreamble, CRC: true}
	if preset = q.Get("preset"); preset != "" {
		if p, err = Preset(preset); err != nil {
			return 0, p, "", err
		}
	}
	if v, ok, err := QueryInt(q, "sf", 5, 12); err != nil {
		return 0, p, "", err
	} else if ok {
		p.SF = v
	}
	if v, ok, err := QueryFloat(q, "bw"); err != nil {
		return 0, p, "", err
	} else if ok {
		if v <= 0 {
			return 0, p, "", &ValueError{"bw", q.Get("bw"), "want a bandwidth in kHz, e.g. 125"}
		}
		p.BandwidthHz = int(math.Round(v * 1000))
	}
	if v, ok, err := QueryInt(q, "cr", 5, 8); err != nil {
		return 0, p, "", err
	} else if ok {
		p.CR = v - 4
	}
	if v, ok, err := QueryInt(q, "preamble", 6, 65535); err != nil {
		return 0, p, "", err
	} else if ok {
		p.Preamble = v
	}
	return freqHz, p, preset, nil
}
