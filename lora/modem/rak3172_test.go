package modem_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/modem"
	"github.com/ternmesh/tern/lora/modememu"
	"github.com/ternmesh/tern/transports/radiolink"
)

func rakCfg(t *testing.T, air *modememu.Air, path, q string) modem.Config {
	t.Helper()
	cfg, err := modem.ParseURL("rak3172://" + path + "?freq=869.525&sf=7&bw=500&txp=14" + q)
	if err != nil {
		t.Fatal(err)
	}
	cfg.After = air.After
	return cfg
}

// rakPair plugs in two emulated RAK3172s, a and b, with drivers opened
// with the URL query suffix q.
func rakPair(t *testing.T, air *modememu.Air, q string) ([2]*modememu.RAK3172, [2]*modem.RAK3172) {
	t.Helper()
	var emus [2]*modememu.RAK3172
	var devs [2]*modem.RAK3172
	for i := range devs {
		emus[i], devs[i] = plugIn(t, func() (*modememu.RAK3172, error) {
			return modememu.NewRAK3172(air, modememu.RAKConfig{Name: string(rune('a' + i))})
		}, func(e *modememu.RAK3172) (*modem.RAK3172, error) {
			return modem.OpenRAK3172(ctxT(t, 5*time.Second), rakCfg(t, air, e.Path(), q))
		})
	}
	return emus, devs
}

func TestRAK3172FramesBothWays(t *testing.T) {
	air, _ := testAir(t)
	emus, devs := rakPair(t, air, "")
	ctx := ctxT(t, 10*time.Second)
	sendAll(t, ctx, devs[0], devs[1], payload(600), 255)
	// b sent nothing yet; now it answers, and a (which re-armed receive
	// after each send) must hear it.
	frames := sendAll(t, ctx, devs[1], devs[0], []byte("pong from b"), 255)
	if frames[0].RSSI != -80 {
		t.Fatalf("RSSI %v, want -80", frames[0].RSSI)
	}
	cmds := strings.Join(emus[0].Commands(), "\n")
	for _, want := range []string{"AT+NWM=0", "AT+P2P=869525000:7:500:0:8:14", "AT+PRECV=65534"} {
		if !strings.Contains(cmds, want) {
			t.Fatalf("modem never got %q; got:\n%s", want, cmds)
		}
	}
}

func TestRAK3172WithoutRearmStopsHearing(t *testing.T) {
	// Shows why RearmAfterSend exists: RUI3 ends receive after a send.
	air, _ := testAir(t)
	_, devs := rakPair(t, air, "&rearm=0")
	ctx := ctxT(t, 5*time.Second)
	if err := devs[0].Transmit(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := devs[1].Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := devs[1].Transmit(ctx, []byte("two")); err != nil {
		t.Fatal(err)
	}
	short, cancel := contextWithTimeout(300 * time.Millisecond)
	defer cancel()
	if f, err := devs[0].Receive(short); err == nil {
		t.Fatalf("a heard %q with receive not re-armed", f.Data)
	}
}

func TestRAK3172BadParameterIsAClearError(t *testing.T) {
	air, _ := testAir(t)
	e, err := modememu.NewRAK3172(air, modememu.RAKConfig{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Unplug()
	cfg := rakCfg(t, air, e.Path(), "")
	cfg.TxPowerDBm = 30 // the module takes 5..22 dBm
	_, err = modem.OpenRAK3172(ctxT(t, 5*time.Second), cfg)
	if err == nil || !strings.Contains(err.Error(), "AT_PARAM_ERROR") || !strings.Contains(err.Error(), "AT+P2P=") {
		t.Fatalf("err = %v, want AT_PARAM_ERROR explained with the command", err)
	}
}

func TestRAK3172BusyIsReported(t *testing.T) {
	air, _ := testAir(t)
	e, err := modememu.NewRAK3172(air, modememu.RAKConfig{Name: "x", BusyWhileRx: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Unplug()
	cfg := rakCfg(t, air, e.Path(), "&stoprx=0")
	d, err := modem.OpenRAK3172(ctxT(t, 5*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.Transmit(ctxT(t, 5*time.Second), []byte("x"))
	if !errors.Is(err, modem.ErrRAKBusy) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("err = %v, want ErrRAKBusy", err)
	}
	e.Unplug()
	if _, err := d.Receive(ctxT(t, 5*time.Second)); !errors.Is(err, radiolink.ErrDeviceClosed) {
		t.Fatalf("after unplug: %v", err)
	}
}
