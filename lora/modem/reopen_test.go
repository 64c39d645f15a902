package modem_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/modem"
	"github.com/ternmesh/tern/lora/modememu"
	"github.com/ternmesh/tern/transports/radiolink"
)

func TestReopenerSurvivesReplug(t *testing.T) {
	air, _ := testAir(t)
	link := filepath.Join(t.TempDir(), "ttyRNODE")
	e1, err := modememu.NewRNode(air, modememu.RNodeConfig{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e1.Path(), link); err != nil {
		t.Fatal(err)
	}
	eb, err := modememu.NewRNode(air, modememu.RNodeConfig{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eb.Unplug)
	ctx := ctxT(t, 15*time.Second)
	b, err := modem.OpenRNode(ctx, rnodeCfg(air, eb.Path()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	opens := 0
	r, err := modem.NewReopener(ctx, link, func(ctx context.Context) (modem.Modem, error) {
		opens++
		return modem.OpenRNode(ctx, rnodeCfg(air, link))
	}, modem.ReopenOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	e1.Unplug()
	// Transmit sees the outage as transient: ErrModemGone, not ErrDeviceClosed.
	var terr error
	for terr == nil {
		terr = r.Transmit(ctx, []byte("lost"))
	}
	if !errors.Is(terr, modem.ErrModemGone) || errors.Is(terr, radiolink.ErrDeviceClosed) {
		t.Fatalf("Transmit during outage: %v, want ErrModemGone only", terr)
	}
	if !strings.Contains(terr.Error(), "check the cable") {
		t.Fatalf("message %q does not say what to do", terr)
	}

	got := make(chan radiolink.RxFrame, 1)
	go func() {
		f, err := r.Receive(ctx) // blocks through the outage, reopening
		if err != nil {
			t.Errorf("Receive: %v", err)
		}
		got <- f
	}()
	// The modem comes back as a new pty at the same path.
	e2, err := modememu.NewRNode(air, modememu.RNodeConfig{Name: "a2"})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Unplug()
	tmp := link + ".new"
	if err := os.Symlink(e2.Path(), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	for !r.Connected() {
		select {
		case <-ctx.Done():
			t.Fatal("Reopener never reconnected")
		case <-time.After(5 * time.Millisecond): // polling a status, not synchronising
		}
	}
	if err := b.Transmit(ctx, []byte("welcome back")); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if string(f.Data) != "welcome back" {
			t.Fatalf("got %q", f.Data)
		}
	case <-ctx.Done():
		t.Fatal("no frame after reconnect")
	}
	if opens < 2 {
		t.Fatalf("opened %d times, want a reopen", opens)
	}
	r.Close()
	if _, err := r.Receive(ctx); !errors.Is(err, radiolink.ErrDeviceClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
}
