package modem_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/modem"
	"github.com/ternmesh/tern/lora/modememu"
	"github.com/ternmesh/tern/lora/radiosim"
	"github.com/ternmesh/tern/transports/radiolink"
)

func e22Cfg(t *testing.T, air *modememu.Air, e *modememu.E22, extra string) modem.Config {
	t.Helper()
	cfg, err := modem.ParseURL("e22://" + e.Path() + "?freq=868.125&air=9.6k&addr=0x0001&m0=22&m1=27&gap=10ms" + extra)
	if err != nil {
		t.Fatal(err)
	}
	cfg.E22.Pins = e.Pins()
	cfg.After = air.After
	return cfg
}

func TestE22TwoKilobytesCrossTheAir(t *testing.T) {
	air, trace := testAir(t)
	var emus [2]*modememu.E22
	var devs [2]*modem.E22
	for i := range emus {
		emus[i], devs[i] = plugIn(t, func() (*modememu.E22, error) {
			return modememu.NewE22(air, modememu.E22Config{Name: string(rune('a' + i)), X: float64(i) * 50})
		}, func(e *modememu.E22) (*modem.E22, error) {
			return modem.OpenE22(ctxT(t, 5*time.Second), e22Cfg(t, air, e, ""))
		})
	}
	regs := emus[0].Registers()
	want := []byte{0x00, 0x01, 0x00, 0x64, 0x00, 18, 0x80}
	for i, w := range want {
		if regs[i] != w {
			t.Fatalf("emulated module register %02X = 0x%02X after configuration, want 0x%02X", i, regs[i], w)
		}
	}
	if devs[0].MaxFrame() != 240 {
		t.Fatalf("MaxFrame = %d, want the 240-byte sub-packet", devs[0].MaxFrame())
	}
	frames := sendAll(t, ctxT(t, 20*time.Second), devs[0], devs[1], payload(2048), devs[0].MaxFrame())
	if len(frames) != 9 {
		t.Fatalf("%d packets, want 9 (gap framing merged or split packets)", len(frames))
	}
	for _, f := range frames {
		if f.RSSI != -80 || !math.IsNaN(f.SNR) {
			t.Fatalf("RSSI %v SNR %v: want -80 dBm from the appended RSSI byte and no SNR", f.RSSI, f.SNR)
		}
	}
	var tx int
	for _, e := range trace() {
		if e.Kind == radiosim.EventTx {
			tx++
		}
	}
	if tx != 9 {
		t.Fatalf("%d packets on the air, want 9", tx)
	}
}

func TestE22FixedModeAddressesTheRightModule(t *testing.T) {
	air, _ := testAir(t)
	var devs [3]*modem.E22
	for i, addr := range []string{"0x0001", "0x0002", "0x0003"} {
		_, devs[i] = plugIn(t, func() (*modememu.E22, error) {
			return modememu.NewE22(air, modememu.E22Config{Name: addr})
		}, func(e *modememu.E22) (*modem.E22, error) {
			cfg := e22Cfg(t, air, e, "&fixed=1")
			cfg.E22.Address = uint16(i + 1)
			cfg.E22.Destination = 0x0002
			return modem.OpenE22(ctxT(t, 5*time.Second), cfg)
		})
	}
	if devs[0].MaxFrame() != 237 {
		t.Fatalf("fixed-mode MaxFrame = %d, want 240-3", devs[0].MaxFrame())
	}
	ctx := ctxT(t, 5*time.Second)
	if err := devs[0].Transmit(ctx, []byte("to two")); err != nil {
		t.Fatal(err)
	}
	f, err := devs[1].Receive(ctx)
	if err != nil || string(f.Data) != "to two" {
		t.Fatalf("module 2 got %q, %v", f.Data, err)
	}
	// Module 3 must not have heard it: its next frame is one addressed to it.
	devs[1].Transmit(ctx, []byte("x")) // addressed to 2 as well: 3 ignores it
	short, cancel := contextWithTimeout(200 * time.Millisecond)
	defer cancel()
	if f, err := devs[2].Receive(short); err == nil {
		t.Fatalf("module 3 received %q addressed to module 2", f.Data)
	}
}

func TestE22RegisterMismatchIsAClearError(t *testing.T) {
	air, _ := testAir(t)
	e, err := modememu.NewE22(air, modememu.E22Config{Name: "x", Stuck: map[byte]byte{0x05: 0x10}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Unplug()
	_, err = modem.OpenE22(ctxT(t, 5*time.Second), e22Cfg(t, air, e, ""))
	if err == nil || !strings.Contains(err.Error(), "register 05 CH (channel) reads 0x10 but Tern wrote 0x12") {
		t.Fatalf("err = %v, want the channel register named with both values", err)
	}
}

type strappedInNormalMode struct{ e *modememu.E22 }

func (s strappedInNormalMode) SetMode(m1, m0 bool) error  { return nil }
func (s strappedInNormalMode) WaitAUX(ctx contextT) error { return s.e.Pins().WaitAUX(ctx) }

func TestE22ConfigOutsideMode10IsRefused(t *testing.T) {
	air, _ := testAir(t)
	e, err := modememu.NewE22(air, modememu.E22Config{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Unplug()
	cfg := e22Cfg(t, air, e, "")
	cfg.E22.Pins = strappedInNormalMode{e} // pins that do not really switch
	_, err = modem.OpenE22(ctxT(t, 5*time.Second), cfg)
	if err == nil || !strings.Contains(err.Error(), "configuration mode") {
		t.Fatalf("err = %v, want advice about configuration mode", err)
	}
}

func TestE22UnplugIsAClearError(t *testing.T) {
	air, _ := testAir(t)
	e, err := modememu.NewE22(air, modememu.E22Config{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := modem.OpenE22(ctxT(t, 5*time.Second), e22Cfg(t, air, e, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	e.Unplug()
	_, err = d.Receive(ctxT(t, 5*time.Second))
	if !errors.Is(err, radiolink.ErrDeviceClosed) || !strings.Contains(err.Error(), "went away") {
		t.Fatalf("Receive after unplug: %v", err)
	}
}
