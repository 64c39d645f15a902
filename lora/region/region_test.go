package region

import (
	"strings"
	"testing"
	"time"
)

func TestLookupEU868(t *testing.T) {
	r, err := Lookup("eu868")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		f    int64
		duty float64
		erp  float64
	}{
		{863_500_000, 0.001, 14},
		{865_100_000, 0.01, 14},
		{867_900_000, 0.01, 14},
		{868_100_000, 0.01, 14},
		{868_300_000, 0.01, 14},
		{868_500_000, 0.01, 14},
		{868_800_000, 0.001, 14},
		{869_525_000, 0.1, 27},
		{869_850_000, 0.01, 14},
	}
	for _, c := range cases {
		b, err := r.Band(c.f)
		if err != nil {
			t.Fatalf("%d Hz: %v", c.f, err)
		}
		if b.DutyCycle != c.duty || b.MaxERPdBm != c.erp || b.DwellLimit != 0 || b.LBT {
			t.Errorf("%d Hz: got %+v, want duty %g erp %g", c.f, b, c.duty, c.erp)
		}
	}
	b, _ := r.Band(868_100_000)
	if got := b.DutyLimit(); got != 36*time.Second {
		t.Errorf("1%% duty limit = %v, want 36s per hour", got)
	}
	for _, f := range []int64{862_000_000, 868_650_000, 869_300_000, 870_000_000, 915_000_000} {
		_, err := r.Band(f)
		if err == nil || !strings.Contains(err.Error(), "outside the legal ranges of EU868") || !strings.Contains(err.Error(), "869.400-869.650 MHz") {
			t.Errorf("%d Hz: error %v should name the legal ranges", f, err)
		}
	}
}

func TestChannelFits(t *testing.T) {
	r, _ := Lookup("EU868")
	if b, err := r.Channel(868_100_000, 125_000); err != nil || b.Name != "868.0-868.6 MHz" {
		t.Errorf("868.1 MHz/125k: %+v %v", b, err)
	}
	if b, err := r.Channel(869_525_000, 250_000); err != nil || b.DutyCycle != 0.1 {
		t.Errorf("869.525 MHz/250k: %+v %v", b, err)
	}
	// 868.6 MHz +/- 62.5 kHz runs into the 868.6-868.7 gap.
	if _, err := r.Channel(868_600_000, 125_000); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("868.6 MHz/125k should not fit, got %v", err)
	}
}

func TestLookupOthers(t *testing.T) {
	us, err := Lookup("US915")
	if err != nil {
		t.Fatal(err)
	}
	b, err := us.Band(915_000_000)
	if err != nil || b.DwellLimit != 400*time.Millisecond || b.DwellWindow != 20*time.Second || b.DutyCycle != 0 {
		t.Errorf("US915 band = %+v, %v", b, err)
	}
	if _, err := us.Band(868_100_000); err == nil || !strings.Contains(err.Error(), "902.000-928.000 MHz") {
		t.Errorf("868.1 MHz in US915: %v", err)
	}
	for _, n := range Names() {
		r, err := Lookup(n)
		if err != nil || r.Name != n || len(r.Bands) == 0 {
			t.Errorf("Lookup(%s) = %+v, %v", n, r, err)
		}
		for _, sb := range r.Bands {
			if sb.LowHz >= sb.HighHz {
				t.Errorf("%s %s: empty range", n, sb.Name)
			}
		}
	}
	_, err = Lookup("Mars")
	if err == nil || !strings.Contains(err.Error(), "EU868") || !strings.Contains(err.Error(), "US915") {
		t.Errorf("unknown region error should list known ones: %v", err)
	}
	// Lookup returns fresh data: modifying it does not leak.
	a, _ := Lookup("EU868")
	a.Bands[0].DutyCycle = 1
	c, _ := Lookup("EU868")
	if c.Bands[0].DutyCycle != 0.001 {
		t.Errorf("Lookup shares state between calls")
	}
}

func TestUS915DwellOnlyForNarrowChannels(t *testing.T) {
	us, _ := Lookup("US915")
	narrow, err := us.Channel(915_000_000, 125_000)
	if err != nil || narrow.DwellLimit != 400*time.Millisecond {
		t.Fatalf("125 kHz: %+v %v, want the 400 ms dwell limit", narrow, err)
	}
	wide, err := us.Channel(915_000_000, 500_000)
	if err != nil || wide.DwellLimit != 0 {
		t.Fatalf("500 kHz: %+v %v, want no dwell limit", wide, err)
	}
}
