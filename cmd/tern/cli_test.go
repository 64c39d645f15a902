package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/router"
	"github.com/ternmesh/tern/transports"
)

func TestCLIExplainsMistakes(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"send", "bob", "hi", "--data", dir}, "start it with `tern run`"},
		{[]string{"contact", "--data", dir}, "needs a subcommand"},
		{[]string{"sas", "--data", dir}, "usage: tern sas <contact>"},
		{[]string{"run", "--data", dir, "extra"}, "takes no arguments"},
		{[]string{"run", "--data", dir, "--log-level", "loud"}, "use debug, info, warn or error"},
		{[]string{"run", "--data", dir, "--listen", "127.0.0.1:0", "--web", "off", "--mdns", "off", "--link", "rnode:///dev/ttyUSB9?freq=700"}, "outside every region"},
		{[]string{"run", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--web", "off", "--mdns", "off", "--link", "kiss+tcp://127.0.0.1:8001"}, "callsign"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		err := runCLI(context.Background(), c.args, strings.NewReader(""), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tern %s: error %v, want one containing %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	var out bytes.Buffer
	if err := runCLI(context.Background(), []string{"help"}, nil, &out, &out); err != nil || !strings.Contains(out.String(), "tern run") {
		t.Errorf("tern help: %v\n%s", err, out.String())
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	var rc runConfig
	if err := loadConfig("../../tern.conf.example", &rc, map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if rc.data != "/var/lib/tern" || rc.listen != "0.0.0.0:7337" || rc.name != "mast-relay" || rc.logLevel != "info" {
		t.Errorf("example config read as %+v", rc)
	}
}

func TestConfigFlagsWinAndErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tern.conf")
	os.WriteFile(path, []byte("# comment\nname = from-file\ndata = state\nlink = quic://a:1\nlink = quic://b:2\n"), 0o600)
	rc := runConfig{name: "from-flag"}
	if err := loadConfig(path, &rc, map[string]bool{"name": true}); err != nil {
		t.Fatal(err)
	}
	if rc.name != "from-flag" {
		t.Errorf("name = %q, the flag must win", rc.name)
	}
	if rc.data != filepath.Join(dir, "state") {
		t.Errorf("relative data dir = %q, want it next to the config file", rc.data)
	}
	if len(rc.links) != 2 {
		t.Errorf("links = %v, want both", rc.links)
	}
	os.WriteFile(path, []byte("name = x\ncolour = blue\n"), 0o600)
	err := loadConfig(path, &runConfig{}, map[string]bool{})
	if err == nil || !strings.Contains(err.Error(), "tern.conf:2") || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown option error = %v, want file:line and the option", err)
	}
}

func TestLoRaChannelOutsideTheRulesExplained(t *testing.T) {
	if _, err := loraBudget("", 868_125_000, 500_000); err == nil || !strings.Contains(err.Error(), "EU868") || !strings.Contains(err.Error(), "868.000-868.600") {
		t.Errorf("500 kHz at 868.125 MHz: %v, want the EU868 ranges named", err)
	}
	if _, err := loraBudget("", 2_400_000_000, 125_000); err == nil || !strings.Contains(err.Error(), "outside every region") {
		t.Errorf("2.4 GHz: %v", err)
	}
	b, err := loraBudget("", 868_100_000, 125_000)
	if err != nil || b.Band().DutyCycle != 0.01 {
		t.Fatalf("868.1 MHz: %v %+v, want the 1 %% sub-band", err, b)
	}
}

func TestPeersSaysWhenASpentRadioSendsAgain(t *testing.T) {
	var out bytes.Buffer
	printPeers(&out, []router.PeerInfo{{
		Neighbour: "0123456789abcdef0123456789abcdef", State: "up",
		Radio: &transports.RadioInfo{Radio: "rnode:/dev/ttyUSB0", RSSI: -112, SNR: -3.5, AirtimeUsed: 36 * time.Second,
			NextFree: time.Now().Add(42 * time.Minute), Queued: 4},
	}})
	for _, want := range []string{"RSSI -112 dBm, SNR -3.5 dB", "airtime used 36s", "4 frames queued", "airtime budget spent, next frame at", "(in 42m"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tern peers lacks %q:\n%s", want, out.String())
		}
	}
}
