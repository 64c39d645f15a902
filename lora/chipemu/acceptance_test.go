package chipemu_test

import (
	"context"
	"errors"
	"github.com/ternmesh/tern/lora/chipdev"
	"testing"
	"time"

	"github.com/ternmesh/tern/hw"
	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/chipemu"
	"github.com/ternmesh/tern/lora/radiosim"
	"github.com/ternmesh/tern/lora/sx126x"
	"github.com/ternmesh/tern/lora/sx127x"
	"github.com/ternmesh/tern/transports/radiolink"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var sf9 = airtime.Params{SF: 9, BandwidthHz: 125000, CR: 1, CRC: true}

const freq = 869_525_000

// A Waveshare SX1262 HAT and an Adafruit RFM95 bonnet, opened by board name
// through hw.Open, exchange frames both ways through the Device API.
func TestWaveshareAndAdafruitTalk(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{DefaultRSSIdBm: -100}, 40)
	b.Start()
	t.Cleanup(b.Close)
	o := chipemu.NewOpener()
	ws, err := hw.Lookup("waveshare-sx1262")
	if err != nil {
		t.Fatal(err)
	}
	ada, err := hw.Lookup("adafruit-rfm9x")
	if err != nil {
		t.Fatal(err)
	}
	c62 := b.NewBoardSX1262("waveshare", ws)
	c62.Attach(o, ws)
	c76 := b.NewSX1276("adafruit")
	c76.Attach(o, ada)

	h62, err := hw.Open(ws, o)
	if err != nil {
		t.Fatal(err)
	}
	defer h62.Close()
	h76, err := hw.Open(ada, o)
	if err != nil {
		t.Fatal(err)
	}
	defer h76.Close()

	d62, err := sx126x.Open(h62.Conn, sx126x.Pins{Reset: h62.Reset, Busy: h62.Busy, DIO1: h62.IRQ}, sx126x.Config{
		FrequencyHz: freq, Modulation: sf9, SyncWord: 0x1424, TCXOVolts: ws.TCXOVolts, DIO2RFSwitch: ws.DIO2RFSwitch,
		Timing: chipdev.Timing{Now: b.Now, Sleep: b.Sleep}})
	if err != nil {
		t.Fatal(err)
	}
	defer d62.Close()
	d76, err := sx127x.Open(h76.Conn, sx127x.Pins{Reset: h76.Reset, DIO0: h76.IRQ}, sx127x.Config{
		FrequencyHz: freq, Modulation: sf9, SyncWord: 0x12, Timing: chipdev.Timing{Now: b.Now, Sleep: b.Sleep}})
	if err != nil {
		t.Fatal(err)
	}
	defer d76.Close()

	var devs = []radiolink.Device{d62, d76}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 6 {
		from, to := devs[i%2], devs[1-i%2]
		msg := []byte{'f', 'r', 'a', 'm', 'e', byte('0' + i)}
		start := b.Now()
		if err := from.Transmit(ctx, msg); err != nil {
			t.Fatalf("frame %d: transmit: %v", i, err)
		}
		if el := b.Now().Sub(start); el < sf9.TimeOnAir(len(msg)) {
			t.Errorf("frame %d: transmit returned after %v, the frame takes %v on air", i, el, sf9.TimeOnAir(len(msg)))
		}
		f, err := to.Receive(ctx)
		if err != nil {
			t.Fatalf("frame %d: receive: %v", i, err)
		}
		if string(f.Data) != string(msg) {
			t.Fatalf("frame %d: got %q want %q", i, f.Data, msg)
		}
		// -100 dBm over a -117 dBm noise floor (125 kHz, NF 6 dB).
		if f.RSSI != -100 || f.SNR < 16.5 || f.SNR > 17.5 {
			t.Errorf("frame %d: RSSI %v dBm, SNR %v dB; want -100 and about 17", i, f.RSSI, f.SNR)
		}
	}
	for _, v := range append(c62.Violations(), c76.Violations()...) {
		t.Errorf("protocol violation: %v", v)
	}
	if tx, _ := c62.Frames(); tx != 3 {
		t.Errorf("SX1262 sent %d frames, want 3", tx)
	}
	if m, ok := any(d76).(radiolink.AirtimeModel); !ok || m.TimeOnAir(13) != 164864*time.Microsecond {
		t.Errorf("SX127x airtime model missing or wrong")
	}
	if _, ok := any(d62).(radiolink.CarrierSense); !ok {
		t.Errorf("SX126x has no carrier sense")
	}
}

// Different sync words (0x12 private vs 0x3444 LoRaWAN) do not hear each other.
func TestSyncWordSpellings(t *testing.T) {
	for _, tc := range []struct {
		sx126x uint16
		heard  bool
	}{{0x1424, true}, {0x3444, false}} {
		b := chipemu.NewBench(t0, radiosim.Config{}, 40)
		b.Start()
		c62, c76 := b.NewSX1262("a", false, false), b.NewSX1276("b")
		d62, err := sx126x.Open(c62.SPI(), sx126x.Pins{Reset: c62.Reset, Busy: c62.Busy, DIO1: c62.DIO1},
			sx126x.Config{FrequencyHz: freq, Modulation: sf9, SyncWord: tc.sx126x, Timing: chipdev.Timing{Now: b.Now, Sleep: b.Sleep}})
		if err != nil {
			t.Fatal(err)
		}
		d76, err := sx127x.Open(c76.SPI(), sx127x.Pins{Reset: c76.Reset, DIO0: c76.DIO0},
			sx127x.Config{FrequencyHz: freq, Modulation: sf9, SyncWord: 0x12, Timing: chipdev.Timing{Now: b.Now, Sleep: b.Sleep}})
		if err != nil {
			t.Fatal(err)
		}
		if err := d62.Transmit(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, rx := c76.Frames(); (rx == 1) != tc.heard {
			t.Errorf("SX126x sync 0x%04X vs SX127x 0x12: heard=%v, want %v", tc.sx126x, rx == 1, tc.heard)
		}
		d62.Close()
		d76.Close()
		b.Close()
	}
}

func TestBoardOpenErrors(t *testing.T) {
	o := chipemu.NewOpener()
	ada, _ := hw.Lookup("adafruit-rfm9x")
	if _, err := hw.Open(ada, o); !errors.Is(err, hw.ErrSPIDisabled) {
		t.Errorf("no SPI port: %v, want ErrSPIDisabled", err)
	}
	uart, _ := hw.Lookup("waveshare-uart")
	if _, err := hw.Open(uart, o); err == nil {
		t.Error("opened a serial board as SPI")
	}
}
