package sx127x_test

import (
	"context"
	"errors"
	"github.com/ternmesh/tern/lora/chipdev"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/chipemu"
	"github.com/ternmesh/tern/lora/radiosim"
	"github.com/ternmesh/tern/lora/sx127x"
	"github.com/ternmesh/tern/transports/radiolink"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var sf9 = airtime.Params{SF: 9, BandwidthHz: 125000, CR: 1, CRC: true}

func cfg(b *chipemu.Bench, m airtime.Params) sx127x.Config {
	return sx127x.Config{FrequencyHz: 869_525_000, Modulation: m, TxPowerDBm: 14,
		Timing: chipdev.Timing{Now: b.Now, Sleep: b.Sleep, RetryInterval: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}}
}

func open(t *testing.T, b *chipemu.Bench, chip *chipemu.SX1276, c sx127x.Config) *sx127x.Device {
	t.Helper()
	d, err := sx127x.Open(chip.SPI(), sx127x.Pins{Reset: chip.Reset, DIO0: chip.DIO0}, c)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func noViolations(t *testing.T, chips ...*chipemu.SX1276) {
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

func TestExchangeBothWays(t *testing.T) {
	for _, m := range []airtime.Params{sf9, {SF: 12, BandwidthHz: 125000, CR: 1, CRC: true}} {
		t.Run(m.String(), func(t *testing.T) {
			b := chipemu.NewBench(t0, radiosim.Config{DefaultRSSIdBm: -90}, 200)
			b.Start()
			t.Cleanup(b.Close)
			ca, cb := b.NewSX1276("a"), b.NewSX1276("b")
			da, db := open(t, b, ca, cfg(b, m)), open(t, b, cb, cfg(b, m))
			for i, dir := range [][2]*sx127x.Device{{da, db}, {db, da}, {da, db}} {
				msg := []byte{'h', 'i', byte(i)}
				start := b.Now()
				if err := dir[0].Transmit(ctx(t), msg); err != nil {
					t.Fatalf("frame %d: transmit: %v", i, err)
				}
				if got := b.Now().Sub(start); got < m.TimeOnAir(3) {
					t.Errorf("transmit returned after %v of virtual time, frame takes %v", got, m.TimeOnAir(3))
				}
				f, err := dir[1].Receive(ctx(t))
				if err != nil {
					t.Fatalf("frame %d: receive: %v", i, err)
				}
				if string(f.Data) != string(msg) {
					t.Fatalf("frame %d: got %q want %q", i, f.Data, msg)
				}
				if f.RSSI != -90 || math.Abs(f.SNR-(-90+174-51-6)) > 0.25 {
					t.Errorf("frame %d: RSSI %v SNR %v, want -90 dBm and about %v dB", i, f.RSSI, f.SNR, -90+174-51-6.0)
				}
			}
			noViolations(t, ca, cb)
			if m.LDRO() && ca.Reg(0x26)&0x08 == 0 {
				t.Error("LDRO not set at SF12/125 kHz")
			}
		})
	}
}

func TestCRCErrorsAreDropped(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 200)
	b.Start()
	t.Cleanup(b.Close)
	ca, cb := b.NewSX1276("a"), b.NewSX1276("b")
	da, db := open(t, b, ca, cfg(b, sf9)), open(t, b, cb, cfg(b, sf9))
	cb.SetFaults(chipemu.Faults{CRCErrors: true})
	if err := da.Transmit(ctx(t), []byte("bad")); err != nil {
		t.Fatal(err)
	}
	cb.SetFaults(chipemu.Faults{})
	if err := da.Transmit(ctx(t), []byte("good")); err != nil {
		t.Fatal(err)
	}
	f, err := db.Receive(ctx(t))
	if err != nil || string(f.Data) != "good" {
		t.Fatalf("got %q, %v; want the good frame only", f.Data, err)
	}
	if s := db.Stats(); s.CRCErrors != 1 {
		t.Errorf("CRC errors counted: %d, want 1", s.CRCErrors)
	}
	noViolations(t, ca, cb)
}

func TestSyncWordMismatchNotHeard(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 200)
	b.Start()
	t.Cleanup(b.Close)
	ca, cb := b.NewSX1276("a"), b.NewSX1276("b")
	c2 := cfg(b, sf9)
	c2.SyncWord = 0x34
	da, _ := open(t, b, ca, cfg(b, sf9)), open(t, b, cb, c2)
	if err := da.Transmit(ctx(t), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, rx := cb.Frames(); rx != 0 {
		t.Errorf("a LoRaWAN-sync receiver decoded a private-network frame")
	}
}

func TestHungChipRecovers(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 200)
	b.Start()
	t.Cleanup(b.Close)
	ca, cb := b.NewSX1276("a"), b.NewSX1276("b")
	c := cfg(b, sf9)
	c.TxTimeout = 500 * time.Millisecond
	da, db := open(t, b, ca, c), open(t, b, cb, cfg(b, sf9))
	ca.SetFaults(chipemu.Faults{NoIRQ: true})
	start := b.Now()
	err := da.Transmit(ctx(t), []byte("lost"))
	if err == nil {
		t.Fatal("transmit on a hung chip succeeded")
	}
	if el := b.Now().Sub(start); el < 500*time.Millisecond || el > 2*time.Second {
		t.Errorf("error after %v, want about the 500 ms timeout", el)
	}
	ca.SetFaults(chipemu.Faults{})
	if err := da.Transmit(ctx(t), []byte("back")); err != nil {
		t.Fatalf("after the fault cleared: %v", err)
	}
	f, err := db.Receive(ctx(t))
	if err != nil || string(f.Data) != "back" {
		t.Fatalf("got %q %v", f.Data, err)
	}
	if up, _ := da.LinkUp(); !up || da.Stats().Resets == 0 {
		t.Errorf("link up %v, resets %d", up, da.Stats().Resets)
	}
	noViolations(t, ca, cb)
}

func TestUnplugged(t *testing.T) {
	for _, v := range []byte{0x00, 0xFF} {
		b := chipemu.NewBench(t0, radiosim.Config{}, 200)
		b.Start()
		chip := b.NewSX1276("a")
		chip.SetFaults(chipemu.Faults{Unplugged: true, UnpluggedByte: v})
		_, err := sx127x.Open(chip.SPI(), sx127x.Pins{Reset: chip.Reset, DIO0: chip.DIO0}, cfg(b, sf9))
		if !errors.Is(err, sx127x.ErrNoChip) {
			t.Errorf("bus reads 0x%02X: error %v, want ErrNoChip", v, err)
		}
		if ver, err := sx127x.Probe(chip.SPI(), chip.Reset, b.Sleep); ver != v || !errors.Is(err, sx127x.ErrNoChip) {
			t.Errorf("probe: 0x%02X %v", ver, err)
		}
		b.Close()
	}
}

func TestUnpluggedWhileRunning(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 200)
	b.Start()
	t.Cleanup(b.Close)
	ca := b.NewSX1276("a")
	c := cfg(b, sf9)
	c.TxTimeout = 300 * time.Millisecond
	da := open(t, b, ca, c)
	ca.SetFaults(chipemu.Faults{Unplugged: true})
	if err := da.Transmit(ctx(t), []byte("x")); err == nil {
		t.Fatal("transmit to an unplugged chip succeeded")
	}
	err := da.Transmit(ctx(t), []byte("x"))
	if !errors.Is(err, sx127x.ErrLinkDown) || !errors.Is(err, sx127x.ErrNoChip) && !containsNoChip(err) {
		t.Errorf("second transmit: %v, want link down naming the missing chip", err)
	}
	if up, _ := da.LinkUp(); up {
		t.Error("link reported up with the chip unplugged")
	}
}

func containsNoChip(err error) bool {
	return err != nil && len(err.Error()) > 0 && contains(err.Error(), "check the HAT is seated")
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestClose(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 200)
	b.Start()
	t.Cleanup(b.Close)
	ca := b.NewSX1276("a")
	d := open(t, b, ca, cfg(b, sf9))
	d.Close()
	d.Close()
	if err := d.Transmit(ctx(t), []byte("x")); !errors.Is(err, radiolink.ErrDeviceClosed) {
		t.Errorf("transmit after close: %v", err)
	}
	if _, err := d.Receive(ctx(t)); !errors.Is(err, radiolink.ErrDeviceClosed) {
		t.Errorf("receive after close: %v", err)
	}
	if err := d.Transmit(ctx(t), make([]byte, 256)); err == nil {
		t.Error("256-byte frame accepted")
	}
}
