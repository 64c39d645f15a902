package main

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/hw"
	"github.com/ternmesh/tern/lora/chipemu"
	"github.com/ternmesh/tern/lora/radiosim"
	"github.com/ternmesh/tern/lora/sx126x"
	"github.com/ternmesh/tern/transports/radiolink"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSPIRadioURLParsing(t *testing.T) {
	r, err := parseSPIRadio(mustURL(t, "lora+spi://waveshare-sx1262?freq=869.525&bw=250&sf=11&cr=5&txp=14&reset=17&irq=4"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Board.Name != "waveshare-sx1262" || r.Board.Chip != hw.SX1262 || r.Board.Pins[hw.PinReset] != 17 || r.Board.Pins[hw.PinIRQ] != 4 ||
		r.Board.Pins[hw.PinBusy] != 20 {
		t.Errorf("board %v: want the Waveshare HAT with reset=17 irq=4 and its own busy=20", r.Board)
	}
	if r.FrequencyHz != 869_525_000 || r.LoRa.SF != 11 || r.LoRa.BandwidthHz != 250000 || r.LoRa.CR != 1 || r.TxPowerDBm != 14 || r.SyncWord != 0x12 {
		t.Errorf("settings %+v", r)
	}
	if r.Band.DutyCycle != 0.1 {
		t.Errorf("869.525 MHz is in the 10 %% sub-band of EU868, got %+v", r.Band)
	}

	// A preset gives the modulation; explicit keys override it; the
	// SX126x spelling of the sync word is understood.
	r, err = parseSPIRadio(mustURL(t, "lora+spi://Adafruit-RFM9x?freq=869.525&preset=LongFast&preamble=8&sync=0x3444&region=eu868"))
	if err != nil {
		t.Fatal(err)
	}
	if r.LoRa.SF != 11 || r.LoRa.BandwidthHz != 250000 || r.LoRa.Preamble != 8 || r.SyncWord != 0x34 || r.Region != "EU868" {
		t.Errorf("preset LongFast with preamble=8, sync 0x3444: got %+v", r)
	}
	if got := sx126xSync(0x12); got != 0x1424 {
		t.Errorf("0x12 in the SX126x spelling is 0x%04X, want 0x1424", got)
	}

	for _, tc := range []struct{ url, want string }{
		{"lora+spi://nosuchhat?freq=869.525", "unknown board"},
		{"lora+spi://waveshare-uart?freq=869.525", "e22://"},
		{"lora+spi://waveshare-sx1262?bw=250", "freq is required"},
		{"lora+spi://waveshare-sx1262?freq=869.525&sf=13", "sf="},
		{"lora+spi://waveshare-sx1262?freq=869.525&bw=300", "bandwidth"},
		{"lora+spi://waveshare-sx1262?freq=869.525&preset=Fastest", "unknown LoRa preset"},
		{"lora+spi://waveshare-sx1262?freq=869.525&colour=red", `unknown option "colour"`},
		{"lora+spi://waveshare-sx1262?freq=869.525&reset=GPIO99", "reset="},
		{"lora+spi://adafruit-rfm9x?freq=869.525&sf=5", "SF6"},
		{"lora+spi://adafruit-rfm9x?freq=869.525&txp=22", "txp="},
		{"lora+spi://waveshare-sx1262?freq=869.525&sync=0x1234", "0xX4Y4"},
		// 869.525 MHz is not in US915: illegal channel in the named region.
		{"lora+spi://waveshare-sx1262?freq=869.525&region=US915", "US915"},
		// A 250 kHz channel at 868.0 MHz straddles two EU868 sub-bands.
		{"lora+spi://waveshare-sx1262?freq=868.0&bw=250", "does not fit"},
		// 700 MHz is nobody's LoRa band.
		{"lora+spi://waveshare-sx1262?freq=700", "outside every region"},
		// 14 dBm is the limit of the 868.0-868.6 MHz sub-band.
		{"lora+spi://waveshare-sx1262?freq=868.1&txp=20", "allowed in"},
	} {
		_, err := parseSPIRadio(mustURL(t, tc.url))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.url, err, tc.want)
		}
	}
}

// spiBench is an emulated Waveshare SX1262 HAT and Adafruit RFM95 bonnet
// on one simulated channel, each behind its own opener, as two Pis would be.
type spiBench struct {
	b         *chipemu.Bench
	c62       *chipemu.SX1262
	c76       *chipemu.SX1276
	ws, ada   spiEnv
	wsB, adaB hw.Board
	oWS, oAda *chipemu.Opener
	log       *slog.Logger
}

func newSPIBench(t *testing.T) *spiBench {
	t.Helper()
	s := &spiBench{b: chipemu.NewBench(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), radiosim.Config{DefaultRSSIdBm: -95}, 40)}
	s.b.Start()
	t.Cleanup(s.b.Close)
	s.wsB, _ = hw.Lookup("waveshare-sx1262")
	s.adaB, _ = hw.Lookup("adafruit-rfm9x")
	s.oWS, s.oAda = chipemu.NewOpener(), chipemu.NewOpener()
	s.c62 = s.b.NewBoardSX1262("waveshare", s.wsB)
	s.c62.Attach(s.oWS, s.wsB)
	s.c76 = s.b.NewSX1276("adafruit")
	s.c76.Attach(s.oAda, s.adaB)
	s.ws = spiEnv{opener: func() (hw.Opener, error) { return s.oWS, nil }, now: s.b.Now, sleep: s.b.Sleep}
	s.ada = spiEnv{opener: func() (hw.Opener, error) { return s.oAda, nil }, now: s.b.Now, sleep: s.b.Sleep}
	s.log = slog.New(slog.DiscardHandler)
	return s
}

// Both HATs opened by URL through the registered opener talk to each
// other, frames carry RSSI and SNR, the link config carries the EU868
// budget, and neither driver breaks a rule of its chip.
func TestSPIRadioOpenerExchange(t *testing.T) {
	s := newSPIBench(t)
	const q = "?freq=869.525&bw=250&sf=7&cr=5&txp=14"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d62, cfg, err := newSPIOpener(s.log, s.ws)(ctx, mustURL(t, "lora+spi://waveshare-sx1262"+q))
	if err != nil {
		t.Fatal(err)
	}
	defer d62.Close()
	if cfg.Budget == nil || cfg.Name != "lora+spi:waveshare-sx1262" {
		t.Errorf("link config %+v: want the EU868 budget and the board name", cfg)
	}
	if _, ok := d62.(radiolink.AirtimeModel); !ok {
		t.Error("the opened device hides the driver's airtime model from the link layer")
	}
	if _, ok := d62.(radiolink.CarrierSense); !ok {
		t.Error("the opened device hides the driver's carrier sense from the link layer")
	}
	d76, _, err := newSPIOpener(s.log, s.ada)(ctx, mustURL(t, "lora+spi://adafruit-rfm9x"+q))
	if err != nil {
		t.Fatal(err)
	}
	defer d76.Close()
	devs := []radiolink.Device{d62, d76}
	for i := range 4 {
		from, to := devs[i%2], devs[1-i%2]
		msg := []byte("frame " + string(rune('0'+i)))
		if err := from.Transmit(ctx, msg); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		f, err := to.Receive(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if string(f.Data) != string(msg) || f.RSSI != -95 || f.SNR <= 0 {
			t.Errorf("frame %d: got %q RSSI %v SNR %v, want %q at -95 dBm", i, f.Data, f.RSSI, f.SNR, msg)
		}
	}
	for _, v := range append(s.c62.Violations(), s.c76.Violations()...) {
		t.Errorf("protocol violation: %v", v)
	}
	// Close releases the port: the same HAT opens again (as the daemon
	// does after a failure).
	d62.Close()
	again, _, err := newSPIOpener(s.log, s.ws)(ctx, mustURL(t, "lora+spi://waveshare-sx1262"+q))
	if err != nil {
		t.Fatalf("reopening the HAT: %v", err)
	}
	again.Close()
}

func TestSPIRadioOpenerErrors(t *testing.T) {
	s := newSPIBench(t)
	ctx := context.Background()
	const q = "?freq=869.525&preset=LongFast"

	// No /dev/spidev: SPI is off in config.txt.
	noSPI := spiEnv{opener: func() (hw.Opener, error) { return chipemu.NewOpener(), nil }, now: s.b.Now, sleep: s.b.Sleep}
	_, _, err := newSPIOpener(s.log, noSPI)(ctx, mustURL(t, "lora+spi://waveshare-sx1262"+q))
	if !errors.Is(err, hw.ErrSPIDisabled) || !strings.Contains(err.Error(), "raspi-config") {
		t.Errorf("SPI disabled: %v, want ErrSPIDisabled with the fix", err)
	}

	// A HAT that is not seated: the bus reads 0xFF.
	s.c62.SetFaults(chipemu.Faults{Unplugged: true, UnpluggedByte: 0xFF})
	_, _, err = newSPIOpener(s.log, s.ws)(ctx, mustURL(t, "lora+spi://waveshare-sx1262"+q))
	if !errors.Is(err, sx126x.ErrNoChip) || !strings.Contains(err.Error(), "waveshare-sx1262") || !strings.Contains(err.Error(), "tern hw probe") {
		t.Errorf("unplugged HAT: %v, want ErrNoChip naming the board and how to check it", err)
	}
	s.c62.SetFaults(chipemu.Faults{})
	// BUSY stuck high: the chip is hung from the start.
	s.c62.SetFaults(chipemu.Faults{BusyStuck: true})
	_, _, err = newSPIOpener(s.log, s.ws)(ctx, mustURL(t, "lora+spi://waveshare-sx1262"+q))
	if err == nil || !strings.Contains(err.Error(), "BUSY") {
		t.Errorf("hung HAT: %v, want an error about BUSY", err)
	}
	s.c62.SetFaults(chipemu.Faults{})

	// The wrong board name for the HAT on the pins: the Adafruit
	// bonnet's opener has no SX1262 on SPI0.0.
	_, _, err = newSPIOpener(s.log, s.ada)(ctx, mustURL(t, "lora+spi://waveshare-sx1262"+q))
	if !errors.Is(err, hw.ErrSPIDisabled) {
		t.Errorf("board on the wrong port: %v", err)
	}

	// Unknown board and illegal channel fail before the hardware is touched.
	touched := spiEnv{opener: func() (hw.Opener, error) {
		t.Error("the opener touched the hardware for a URL it should refuse")
		return nil, errors.New("no")
	}}
	for _, raw := range []string{"lora+spi://rfm69?freq=869.525", "lora+spi://waveshare-sx1262?freq=869.525&bw=500&region=EU868"} {
		if _, _, err := newSPIOpener(s.log, touched)(ctx, mustURL(t, raw)); err == nil {
			t.Errorf("%s opened", raw)
		}
	}
}

// The example Pi relay config in deploy/ parses, and its LoRa link is one
// the lora+spi opener accepts, on a legal EU868 channel.
func TestDeployExampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "pi-relay.conf")
	var rc runConfig
	if err := loadConfig(path, &rc, map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if rc.data != "/var/lib/tern" || rc.web != "off" || rc.name == "" || rc.listen == "" {
		t.Errorf("config %+v: want data /var/lib/tern, web off, a name and a listen address", rc)
	}
	var lora []string
	for _, l := range rc.links {
		if strings.HasPrefix(l, spiScheme+"://") {
			lora = append(lora, l)
		}
	}
	if len(lora) != 1 {
		t.Fatalf("links %q: want one %s:// link", rc.links, spiScheme)
	}
	r, err := parseSPIRadio(mustURL(t, lora[0]))
	if err != nil {
		t.Fatal(err)
	}
	if r.FrequencyHz != 869_525_000 || r.LoRa.SF != 11 || r.LoRa.BandwidthHz != 250000 || r.Band.DutyCycle != 0.1 {
		t.Errorf("pi-relay.conf LoRa link %+v: want 869.525 MHz LongFast in the 10 %% sub-band", r)
	}
	if _, ok := radioOpeners(slog.New(slog.DiscardHandler))[spiScheme]; !ok {
		t.Errorf("the daemon has no opener for %s://", spiScheme)
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "tern.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/tern run --config /etc/tern/tern.conf", "Restart=always",
		"StateDirectory=tern", "SupplementaryGroups=spi gpio dialout", "DeviceAllow=/dev/spidev"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("tern.service lacks %q", want)
		}
	}
}

// On a machine without SPI (this one, or a Pi with SPI off in config.txt)
// the daemon keeps running, and its log says what to do.
func TestDaemonExplainsSPIDisabled(t *testing.T) {
	if _, err := os.Stat("/dev/spidev0.0"); err == nil {
		t.Skip("this machine has /dev/spidev0.0: the test needs one without SPI")
	}
	d := startDaemon(t, "pi", "--listen", "off", "--link", "lora+spi://waveshare-sx1262?freq=869.525&preset=LongFast&region=EU868")
	waitFor(t, "the daemon logs that SPI is off", func() bool {
		return strings.Contains(d.logText(), "SPI is not enabled: enable SPI with raspi-config")
	})
	if st := d.status(); st.Address == "" {
		t.Errorf("the daemon stopped answering: %+v", st)
	}
}

// FuzzParseSPIRadio: no link URL makes the parser panic, and whatever it
// accepts is a known SPI board on a legal channel with valid settings.
func FuzzParseSPIRadio(f *testing.F) {
	f.Add("lora+spi://waveshare-sx1262?freq=869.525&bw=250&sf=11&cr=5&txp=14")
	f.Add("lora+spi://adafruit-rfm9x?freq=869.525&preset=LongFast&reset=17&irq=4&sync=0x1424")
	f.Add("lora+spi://dragino?freq=915.125&sf=7&bw=500&region=US915&spi=SPI0.1")
	f.Add("lora+spi:waveshare-sx1262?freq=868.1&tcxo=0&busy=none")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		r, err := parseSPIRadio(u)
		if err != nil {
			return
		}
		if r.Board.SPI == "" || r.LoRa.Validate() != nil || r.FrequencyHz < r.Band.LowHz || r.FrequencyHz > r.Band.HighHz {
			t.Errorf("%q accepted as %+v", s, r)
		}
	})
}
