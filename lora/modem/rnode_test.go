package modem_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/modem"
	"github.com/ternmesh/tern/lora/modememu"
	"github.com/ternmesh/tern/lora/radiosim"
	"github.com/ternmesh/tern/transports/radiolink"
)

// testAir returns an Air whose trace records every frame put on the air.
func testAir(t *testing.T) (*modememu.Air, func() []radiosim.Event) {
	t.Helper()
	var mu = make(chan struct{}, 1)
	var evs []radiosim.Event
	air := modememu.NewAir(radiosim.Config{Seed: 1, Trace: func(e radiosim.Event) {
		mu <- struct{}{}
		evs = append(evs, e)
		<-mu
	}}, 20)
	t.Cleanup(air.Close)
	return air, func() []radiosim.Event {
		mu <- struct{}{}
		defer func() { <-mu }()
		return append([]radiosim.Event(nil), evs...)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func rnodeCfg(air *modememu.Air, path string) modem.Config {
	cfg, err := modem.ParseURL("rnode://" + path + "?freq=869.525&bw=500&sf=7&cr=5&txp=14")
	if err != nil {
		panic(err)
	}
	cfg.RNode.BootWait = 0
	cfg.After = air.After
	return cfg
}

// plugIn makes an emulated modem with newEmu, opens a driver on it with
// open, and closes the driver and unplugs the modem when the test ends.
func plugIn[E interface {
	Unplug()
	Path() string
}, D interface{ Close() error }](t *testing.T, newEmu func() (E, error), open func(E) (D, error)) (E, D) {
	t.Helper()
	e, err := newEmu()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Unplug)
	d, err := open(e)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return e, d
}

func newRNodePair(t *testing.T, air *modememu.Air) (*modem.RNode, *modem.RNode, *modememu.RNode, *modememu.RNode) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	open := func(e *modememu.RNode) (*modem.RNode, error) { return modem.OpenRNode(ctx, rnodeCfg(air, e.Path())) }
	ea, a := plugIn(t, func() (*modememu.RNode, error) { return modememu.NewRNode(air, modememu.RNodeConfig{Name: "a"}) }, open)
	eb, b := plugIn(t, func() (*modememu.RNode, error) {
		return modememu.NewRNode(air, modememu.RNodeConfig{Name: "b", X: 100})
	}, open)
	return a, b, ea, eb
}

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i/256) // includes 0xC0 and 0xDB, which KISS must escape
	}
	return p
}

// sendAll splits data into frames of at most max bytes, sends them in order
// and reassembles them at the receiver.
func sendAll(t *testing.T, ctx context.Context, tx, rx radiolink.Device, data []byte, max int) []radiolink.RxFrame {
	t.Helper()
	var frames []radiolink.RxFrame
	got := make(chan error, 1)
	var out []byte
	go func() {
		for len(out) < len(data) {
			f, err := rx.Receive(ctx)
			if err != nil {
				got <- err
				return
			}
			frames = append(frames, f)
			out = append(out, f.Data...)
		}
		got <- nil
	}()
	for off := 0; off < len(data); off += max {
		end := min(off+max, len(data))
		if err := tx.Transmit(ctx, data[off:end]); err != nil {
			t.Fatalf("transmit frame at %d: %v", off, err)
		}
	}
	if err := <-got; err != nil {
		t.Fatalf("receive: %v (got %d of %d bytes)", err, len(out), len(data))
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("reassembled payload differs from what was sent")
	}
	return frames
}

func TestRNodeTwoKilobytesCrossTheAir(t *testing.T) {
	air, trace := testAir(t)
	a, b, _, _ := newRNodePair(t, air)
	if a.MaxFrame() != 508 {
		t.Fatalf("MaxFrame = %d, want 508", a.MaxFrame())
	}
	if info := a.Info(); info.FirmwareMajor != 1 || info.FirmwareMinor != 74 || info.Platform != 0x80 {
		t.Fatalf("detect info = %+v", info)
	}
	data := payload(2048)
	ctx := ctxT(t, 20*time.Second)
	frames := sendAll(t, ctx, a, b, data, a.MaxFrame())
	for _, f := range frames {
		// default channel RSSI is -80 dBm; SNR is reported in quarter dB
		if f.RSSI != -80 || math.IsNaN(f.SNR) {
			t.Fatalf("frame RSSI/SNR = %v/%v, want -80 dBm and a number", f.RSSI, f.SNR)
		}
	}
	// Each 508-byte host frame went out as two LoRa frames (254+1, 254+1),
	// each occupying the air for exactly its time on air.
	p := airtime.Params{SF: 7, BandwidthHz: 500000, CR: 1, Preamble: 8, CRC: true}
	var air_ time.Duration
	tx := 0
	for _, e := range trace() {
		if e.Kind != radiosim.EventTx {
			continue
		}
		tx++
		air_ += p.TimeOnAir(e.Size)
	}
	if tx != 9 { // 4 x 508 = 2032 -> 8 LoRa frames, then 16 B -> 1
		t.Fatalf("%d LoRa frames on the air, want 9", tx)
	}
	want := 4*a.TimeOnAir(508) + a.TimeOnAir(16)
	if air_ != want {
		t.Fatalf("air time %v, driver's model says %v", air_, want)
	}
	st := b.Info()
	_ = st
}

func TestRNodeWrongEchoIsAClearError(t *testing.T) {
	air, _ := testAir(t)
	e, err := modememu.NewRNode(air, modememu.RNodeConfig{Name: "x", WrongEcho: map[byte][]byte{0x01: {0x33, 0xC6, 0x6C, 0x48}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Unplug()
	_, err = modem.OpenRNode(ctxT(t, 5*time.Second), rnodeCfg(air, e.Path()))
	if err == nil || !strings.Contains(err.Error(), "frequency 868641864 Hz but Tern asked for 869525000 Hz") {
		t.Fatalf("err = %v, want a frequency mismatch naming both values", err)
	}
}

func TestRNodeSilentPortFailsDetect(t *testing.T) {
	air, _ := testAir(t)
	e, err := modememu.NewRNode(air, modememu.RNodeConfig{Name: "x", Silent: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Unplug()
	cfg := rnodeCfg(air, e.Path())
	cfg.RNode.DetectTimeout = 200 * time.Millisecond
	cfg.After = nil
	_, err = modem.OpenRNode(ctxT(t, 5*time.Second), cfg)
	if err == nil || !strings.Contains(err.Error(), "no answer to the detect handshake") {
		t.Fatalf("err = %v, want a detect failure", err)
	}
}

func TestRNodeUnplugIsAClearError(t *testing.T) {
	air, _ := testAir(t)
	a, b, ea, _ := newRNodePair(t, air)
	_ = b
	ctx := ctxT(t, 10*time.Second)
	errc := make(chan error, 1)
	go func() { _, err := a.Receive(ctx); errc <- err }()
	ea.Unplug()
	err := <-errc
	if !errors.Is(err, radiolink.ErrDeviceClosed) || !errors.Is(err, modem.ErrModemGone) {
		t.Fatalf("Receive after unplug: %v, want ErrDeviceClosed and ErrModemGone", err)
	}
	if !strings.Contains(err.Error(), "went away") || !strings.Contains(err.Error(), "check the cable") {
		t.Fatalf("message %q does not tell the user what happened", err)
	}
	if err := a.Transmit(ctx, []byte("hi")); !errors.Is(err, radiolink.ErrDeviceClosed) {
		t.Fatalf("Transmit after unplug: %v", err)
	}
	a.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

type contextT = context.Context

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
