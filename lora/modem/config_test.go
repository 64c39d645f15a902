package modem

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	c, err := ParseURL("rnode:///dev/ttyUSB0?freq=869.525&bw=250&sf=11&cr=5&txp=14")
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != KindRNode || c.Path != "/dev/ttyUSB0" || c.FrequencyHz != 869525000 || c.LoRa.SF != 11 || c.LoRa.BandwidthHz != 250000 || c.LoRa.CR != 1 || c.TxPowerDBm != 14 {
		t.Fatalf("rnode config %+v", c)
	}
	c, err = ParseURL("e22:///dev/ttyS0?freq=868.125&air=2.4k&addr=0x0001&m0=22&m1=27")
	if err != nil {
		t.Fatal(err)
	}
	if c.E22.Channel != 18 || c.E22.Address != 1 || c.E22.AirRate != 2 || c.E22.M0 != 22 || c.E22.M1 != 27 || c.E22.AUX != -1 || c.E22.PowerDBm != 22 {
		t.Fatalf("e22 config %+v", c.E22)
	}
	c, err = ParseURL("rak3172:///dev/ttyUSB1?freq=869.525&sf=9&bw=125&txp=14")
	if err != nil || c.LoRa.SF != 9 || !c.RAK.RearmAfterSend {
		t.Fatalf("rak config %+v, %v", c, err)
	}
	c, err = ParseURL("rnode:///dev/ttyACM0?freq=869.525&preset=LongFast")
	if err != nil || c.LoRa.SF != 11 || c.LoRa.BandwidthHz != 250000 || c.Preset != "LongFast" {
		t.Fatalf("preset config %+v, %v", c, err)
	}
	e, err := ParseURL("e22:///dev/ttyS0?freq=433.125")
	if err != nil || !e.E22.Band400 || e.E22.Channel != 23 {
		t.Fatalf("400 MHz e22 %+v %v", e.E22, err)
	}
}

func TestParseURLErrorsNameTheProblem(t *testing.T) {
	for url, want := range map[string]string{
		"rnode:///dev/ttyUSB0":                          "freq is required",
		"rnode:///dev/ttyUSB0?freq=abc":                 "not a number",
		"rnode:///dev/ttyUSB0?freq=869.5&sf=13":         "from 5 to 12",
		"rnode:///dev/ttyUSB0?freq=869.5&bw=300":        "not a LoRa bandwidth",
		"rnode:///dev/ttyUSB0?freq=869.5&preset=Fast":   "unknown LoRa preset",
		"rnode:///dev/ttyUSB0?freq=869.5&colour=blue":   "unknown option",
		"rnode://dev/ttyUSB0?freq=869.5":                "three slashes",
		"lora:///dev/ttyUSB0?freq=869.5":                "unknown scheme",
		"e22:///dev/ttyS0?freq=868.5":                   "1 MHz steps",
		"e22:///dev/ttyS0?freq=868.125&air=3k":          "want one of",
		"e22:///dev/ttyS0?freq=868.125&m0=22":           "both m0 and m1",
		"e22:///dev/ttyS0?freq=868.125&txp=14":          "22, 17, 13 or 10",
		"rak3172:///dev/ttyUSB1?freq=869.525&bw=62.5":   "125, 250 or 500",
		"e22:///dev/ttyS0?freq=868.125&preset=LongFast": "air rate",
	} {
		_, err := ParseURL(url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %q", url, err, want)
		}
	}
}
