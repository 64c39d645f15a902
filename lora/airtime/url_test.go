package airtime

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseChannel(t *testing.T) {
	q, _ := url.ParseQuery("freq=869.525&preset=LongFast&sf=10")
	f, p, preset, err := ParseChannel(q)
	if err != nil || f != 869_525_000 || preset != "LongFast" || p.SF != 10 || p.BandwidthHz != 250000 {
		t.Fatalf("got %d %+v %q %v", f, p, preset, err)
	}
	for in, want := range map[string]string{
		"sf=9":                    "freq is required",
		"freq=2400":               "want MHz between 137 and 1020",
		"freq=868.1&sf=13":        "sf=\"13\"",
		"freq=868.1&bw=abc":       "bw=\"abc\": not a number",
		"freq=868.1&cr=9":         "cr=\"9\"",
		"freq=868.1&preset=Turbo": "Turbo",
	} {
		q, _ := url.ParseQuery(in)
		if _, _, _, err := ParseChannel(q); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}
