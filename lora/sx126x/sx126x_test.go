package sx126x_test

import (
	"context"
	"errors"
	"github.com/ternmesh/tern/lora/chipdev"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/chipemu"
	"github.com/ternmesh/tern/lora/radiosim"
	"github.com/ternmesh/tern/lora/sx126x"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var sf9 = airtime.Params{SF: 9, BandwidthHz: 125000, CR: 1, CRC: true}

func bench(t *testing.T) *chipemu.Bench {
	b := chipemu.NewBench(t0, radiosim.Config{DefaultRSSIdBm: -95}, 40)
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func cfg(b *chipemu.Bench, m airtime.Params) sx126x.Config {
	return sx126x.Config{FrequencyHz: 869_525_000, Modulation: m, TxPowerDBm: 14, TCXOVolts: 1.8, DIO2RFSwitch: true,
		Timing: chipdev.Timing{Now: b.Now, Sleep: b.Sleep, RetryInterval: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}}
}

func pins(c *chipemu.SX1262) sx126x.Pins {
	return sx126x.Pins{Reset: c.Reset, Busy: c.Busy, DIO1: c.DIO1}
}

func open(t *testing.T, c *chipemu.SX1262, cf sx126x.Config) *sx126x.Device {
	t.Helper()
	d, err := sx126x.Open(c.SPI(), pins(c), cf)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func noViolations(t *testing.T, chips ...*chipemu.SX1262) {
	t.Helper()
	for _, c := range chips {
		for _, v := range c.Violations() {
			t.Errorf("protocol violation: %v", v)
		}
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestExchange(t *testing.T) {
	for _, m := range []airtime.Params{sf9, {SF: 11, BandwidthHz: 125000, CR: 1, CRC: true}} {
		t.Run(m.String(), func(t *testing.T) {
			b := bench(t)
			ca, cb := b.NewSX1262("a", true, true), b.NewSX1262("b", true, true)
			da, db := open(t, ca, cfg(b, m)), open(t, cb, cfg(b, m))
			for i, dir := range [][2]*sx126x.Device{{da, db}, {db, da}} {
				msg := []byte(strings.Repeat("x", 40+i))
				if err := dir[0].Transmit(ctx(t), msg); err != nil {
					t.Fatalf("transmit: %v", err)
				}
				f, err := dir[1].Receive(ctx(t))
				if err != nil || string(f.Data) != string(msg) {
					t.Fatalf("receive: %q %v", f.Data, err)
				}
				if f.RSSI != -95 || math.Abs(f.SNR-22) > 0.25 {
					t.Errorf("RSSI %v SNR %v, want -95 and 22", f.RSSI, f.SNR)
				}
			}
			noViolations(t, ca, cb)
		})
	}
}

func TestBusyStuckThenRecovers(t *testing.T) {
	b := bench(t)
	ca, cb := b.NewSX1262("a", true, true), b.NewSX1262("b", true, true)
	c := cfg(b, sf9)
	c.BusyTimeout = 50 * time.Millisecond
	da, db := open(t, ca, c), open(t, cb, cfg(b, sf9))
	ca.SetFaults(chipemu.Faults{BusyStuck: true})
	start := b.Now()
	err := da.Transmit(ctx(t), []byte("stuck"))
	if err == nil || !strings.Contains(err.Error(), "BUSY") {
		t.Fatalf("transmit with BUSY stuck: %v, want a BUSY error", err)
	}
	if el := b.Now().Sub(start); el > 2*time.Second {
		t.Errorf("error after %v of virtual time", el)
	}
	if up, _ := da.LinkUp(); up {
		t.Error("link reported up while BUSY is stuck")
	}
	if err := da.Transmit(ctx(t), []byte("still")); !errors.Is(err, sx126x.ErrLinkDown) {
		t.Errorf("transmit while down: %v, want ErrLinkDown", err)
	}
	ca.SetFaults(chipemu.Faults{})
	if err := da.Transmit(ctx(t), []byte("back")); err != nil {
		t.Fatalf("after the fault cleared: %v", err)
	}
	f, err := db.Receive(ctx(t))
	if err != nil || string(f.Data) != "back" {
		t.Fatalf("got %q %v", f.Data, err)
	}
	noViolations(t, ca, cb)
}

func TestNoIRQ(t *testing.T) {
	b := bench(t)
	ca := b.NewSX1262("a", true, true)
	c := cfg(b, sf9)
	c.TxTimeout = 400 * time.Millisecond
	da := open(t, ca, c)
	ca.SetFaults(chipemu.Faults{NoIRQ: true})
	start := b.Now()
	if err := da.Transmit(ctx(t), []byte("x")); err == nil || !strings.Contains(err.Error(), "TxDone") {
		t.Fatalf("transmit: %v, want a TxDone timeout", err)
	}
	if el := b.Now().Sub(start); el < 400*time.Millisecond || el > 3*time.Second {
		t.Errorf("error after %v, want about 400 ms", el)
	}
	ca.SetFaults(chipemu.Faults{})
	if err := da.Transmit(ctx(t), []byte("y")); err != nil {
		t.Fatalf("after the fault cleared: %v", err)
	}
	noViolations(t, ca)
}

func TestUnplugged(t *testing.T) {
	for _, v := range []byte{0x00, 0xFF} {
		b := bench(t)
		c := b.NewSX1262("a", false, false)
		c.SetFaults(chipemu.Faults{Unplugged: true, UnpluggedByte: v})
		_, err := sx126x.Open(c.SPI(), pins(c), cfg(b, sf9))
		if !errors.Is(err, sx126x.ErrNoChip) {
			t.Errorf("bus 0x%02X: %v", v, err)
		}
		if _, err := sx126x.Probe(c.SPI(), c.Reset, c.Busy, b.Now, b.Sleep); !errors.Is(err, sx126x.ErrNoChip) {
			t.Errorf("probe bus 0x%02X: %v", v, err)
		}
	}
}

func TestProbe(t *testing.T) {
	b := bench(t)
	c := b.NewSX1262("a", false, false)
	st, err := sx126x.Probe(c.SPI(), c.Reset, c.Busy, b.Now, b.Sleep)
	if err != nil || st.Mode != sx126x.ModeStbyRC {
		t.Fatalf("probe: %+v %v", st, err)
	}
}

// A driver told the wrong board (no TCXO) must not pass on a board with one.
func TestMissingTCXOIsCaught(t *testing.T) {
	b := bench(t)
	c := b.NewSX1262("a", true, true)
	cf := cfg(b, sf9)
	cf.TCXOVolts = 0
	d, err := sx126x.Open(c.SPI(), pins(c), cf)
	if err == nil {
		d.Close()
	}
	found := false
	for _, v := range c.Violations() {
		found = found || v.Code == chipemu.VTCXO
	}
	if !found {
		t.Errorf("no TCXO violation recorded: %v", c.Violations())
	}
}
