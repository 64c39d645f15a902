package airtime

import (
	"strings"
	"testing"
	"time"
)

func ptr(b bool) *bool { return &b }

func base(sf int) Params {
	return Params{SF: sf, BandwidthHz: 125000, CR: 1, Preamble: 8, CRC: true}
}

func TestTimeOnAirSpecVectors(t *testing.T) {
	cases := []struct {
		name string
		p    Params
		n    int
		want time.Duration
	}{
		{"SF7 10B", base(7), 10, 41216 * time.Microsecond},
		{"SF9 13B", base(9), 13, 164864 * time.Microsecond},
		{"SF11 LDRO 10B", func() Params { p := base(11); p.LowDataRateOptimize = ptr(true); return p }(), 10, 577536 * time.Microsecond},
		{"SF11 auto LDRO 10B", base(11), 10, 577536 * time.Microsecond},
		{"SF12 255B", base(12), 255, 9019392 * time.Microsecond},
	}
	for _, c := range cases {
		got := c.p.TimeOnAir(c.n)
		if got != c.want {
			t.Errorf("%s: TimeOnAir = %v, want %v", c.name, got, c.want)
		}
	}
	if got := base(12).TimeOnAir(255).Round(10 * time.Millisecond); got != 9020*time.Millisecond {
		t.Errorf("SF12 255 B rounds to %v, want 9.02s", got)
	}
}

func TestTimeOnAirVariants(t *testing.T) {
	p := base(7)
	// Default preamble (0) is 8 symbols.
	q := p
	q.Preamble = 0
	if q.TimeOnAir(10) != p.TimeOnAir(10) {
		t.Errorf("preamble 0 should mean 8")
	}
	// Each extra preamble symbol adds exactly one symbol time.
	q.Preamble = 9
	if d := q.TimeOnAir(10) - p.TimeOnAir(10); d != p.SymbolTime() {
		t.Errorf("one more preamble symbol added %v, want %v", d, p.SymbolTime())
	}
	// CRC off and implicit header never make a frame longer.
	noCRC := p
	noCRC.CRC = false
	impl := p
	impl.ImplicitHeader = true
	for n := 0; n <= 255; n++ {
		if noCRC.TimeOnAir(n) > p.TimeOnAir(n) || impl.TimeOnAir(n) > p.TimeOnAir(n) {
			t.Fatalf("n=%d: CRC off or implicit header made the frame longer", n)
		}
		if n > 0 && p.TimeOnAir(n) < p.TimeOnAir(n-1) {
			t.Fatalf("time on air decreased from %d to %d bytes", n-1, n)
		}
	}
	// Forcing LDRO off at SF12/125k shortens the frame.
	off := base(12)
	off.LowDataRateOptimize = ptr(false)
	if off.TimeOnAir(50) >= base(12).TimeOnAir(50) {
		t.Errorf("LDRO off should be shorter than automatic LDRO at SF12/125k")
	}
	if !base(12).LDRO() || base(10).LDRO() {
		t.Errorf("automatic LDRO: SF12/125k on, SF10/125k off")
	}
	// Known value: SF7/125k CR4/5, 0 B, no CRC, implicit header: preamble 12.25 + 8 symbols.
	z := Params{SF: 7, BandwidthHz: 125000, CR: 1, ImplicitHeader: true}
	if got, want := z.TimeOnAir(0), time.Duration(2025)*z.SymbolTime()/100; got != want {
		t.Errorf("empty implicit frame: %v, want %v", got, want)
	}
}

func TestSymbolTimeAndBandwidthSpellings(t *testing.T) {
	if got := base(7).SymbolTime(); got != 1024*time.Microsecond {
		t.Errorf("SF7/125k symbol = %v, want 1.024ms", got)
	}
	// 7.8 kHz is exactly 7812.5 Hz: SF7 symbol = 128/7812.5 = 16.384 ms.
	for _, bw := range []int{7800, 7810} {
		p := Params{SF: 7, BandwidthHz: bw, CR: 1}
		if got := p.SymbolTime(); got != 16384*time.Microsecond {
			t.Errorf("bw %d: symbol = %v, want 16.384ms", bw, got)
		}
	}
	// 41.7 kHz is 500/12 kHz: SF7 symbol = 128*12/500000 s = 3.072 ms.
	if got := (Params{SF: 7, BandwidthHz: 41700, CR: 1}).SymbolTime(); got != 3072*time.Microsecond {
		t.Errorf("41.7 kHz symbol = %v", got)
	}
}

func TestValidate(t *testing.T) {
	if err := base(7).Validate(); err != nil {
		t.Fatalf("valid params rejected: %v", err)
	}
	bad := []struct {
		p    Params
		want string
	}{
		{Params{SF: 4, BandwidthHz: 125000, CR: 1}, "spreading factor 4"},
		{Params{SF: 13, BandwidthHz: 125000, CR: 1}, "spreading factor 13"},
		{Params{SF: 7, BandwidthHz: 100000, CR: 1}, "bandwidth 100000 Hz"},
		{Params{SF: 7, BandwidthHz: 125000, CR: 0}, "coding rate index 0"},
		{Params{SF: 7, BandwidthHz: 125000, CR: 5}, "coding rate index 5"},
		{Params{SF: 7, BandwidthHz: 125000, CR: 1, Preamble: 5}, "preamble of 5"},
		{Params{SF: 7, BandwidthHz: 125000, CR: 1, Preamble: 70000}, "preamble of 70000"},
	}
	for _, b := range bad {
		err := b.p.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: error %v, want it to mention %q", b.p, err, b.want)
		}
		if b.p.TimeOnAir(10) != 0 {
			t.Errorf("%+v: invalid params should give zero results", b.p)
		}
	}
	// Several problems are all reported.
	err := Params{}.Validate()
	for _, w := range []string{"spreading factor", "bandwidth", "coding rate"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("zero Params: error %v should mention %s", err, w)
		}
	}
	if _, err := base(7).TimeOnAirChecked(256); err == nil || !strings.Contains(err.Error(), "255") {
		t.Errorf("256 bytes should be refused with the limit named, got %v", err)
	}
	if d, err := base(7).TimeOnAirChecked(10); err != nil || d != 41216*time.Microsecond {
		t.Errorf("TimeOnAirChecked(10) = %v, %v", d, err)
	}
	if base(7).MaxPayload() != 255 {
		t.Errorf("MaxPayload != 255")
	}
}

func TestSF5SF6(t *testing.T) {
	// SX126x variant: SF6/125k, 10 B, CRC, explicit header, CR4/5, 8-symbol preamble:
	// preamble 14.25 symbols; payload ceil((80+16-24+20)/24)=4 blocks -> 8+20 = 28 symbols.
	p := Params{SF: 6, BandwidthHz: 125000, CR: 1, CRC: true}
	want := time.Duration(4225) * p.SymbolTime() / 100
	if got := p.TimeOnAir(10); got != want {
		t.Errorf("SF6 10 B = %v, want %v", got, want)
	}
	if err := (Params{SF: 5, BandwidthHz: 500000, CR: 1}).Validate(); err != nil {
		t.Errorf("SF5 should be valid: %v", err)
	}
}

func TestBitRateAndPresets(t *testing.T) {
	want := map[string]float64{"LongFast": 1074.2, "MediumFast": 3515.6, "ShortFast": 10937.5}
	for name, br := range want {
		p, err := Preset(name)
		if err != nil {
			t.Fatalf("Preset(%q): %v", name, err)
		}
		if got := p.BitRate(); got < br-0.1 || got > br+0.1 {
			t.Errorf("%s bit rate = %.1f, want %.1f", name, got, br)
		}
	}
	lf, _ := Preset("longfast")
	if lf.SF != 11 || lf.BandwidthHz != 250000 || lf.CR != 1 || !lf.CRC {
		t.Errorf("LongFast = %+v", lf)
	}
	ls, _ := Preset("LongSlow")
	if ls.SF != 12 || ls.BandwidthHz != 125000 || ls.CR != 4 || !ls.LDRO() {
		t.Errorf("LongSlow = %+v", ls)
	}
	for _, n := range PresetNames() {
		p, err := Preset(n)
		if err != nil || p.Validate() != nil {
			t.Errorf("preset %s: %v %v", n, err, p.Validate())
		}
	}
	if _, err := Preset("Turbo9000"); err == nil || !strings.Contains(err.Error(), "LongFast") {
		t.Errorf("unknown preset error should list names, got %v", err)
	}
	if s := lf.String(); s != "SF11/250kHz/CR4-5" {
		t.Errorf("String = %q", s)
	}
}
