package node

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/lora/region"
	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/radiolink"
)

// ether is a lossless shared channel for chanDevices: every frame one
// device transmits reaches all the others.
type ether struct {
	mu   sync.Mutex
	devs []*chanDevice
}

type chanDevice struct {
	air    *ether
	in     chan radiolink.RxFrame
	closed chan struct{}
	once   sync.Once
	sent   [][]byte
	mu     sync.Mutex
}

func (e *ether) device() *chanDevice {
	d := &chanDevice{air: e, in: make(chan radiolink.RxFrame, 256), closed: make(chan struct{})}
	e.mu.Lock()
	e.devs = append(e.devs, d)
	e.mu.Unlock()
	return d
}

func (d *chanDevice) Transmit(ctx context.Context, f []byte) error {
	d.mu.Lock()
	d.sent = append(d.sent, append([]byte(nil), f...))
	d.mu.Unlock()
	d.air.mu.Lock()
	defer d.air.mu.Unlock()
	for _, o := range d.air.devs {
		if o != d {
			select {
			case o.in <- radiolink.RxFrame{Data: append([]byte(nil), f...), RSSI: -80, SNR: 7.5, At: time.Now()}:
			default:
			}
		}
	}
	return nil
}

func (d *chanDevice) Receive(ctx context.Context) (radiolink.RxFrame, error) {
	select {
	case f := <-d.in:
		return f, nil
	case <-d.closed:
		return radiolink.RxFrame{}, radiolink.ErrDeviceClosed
	case <-ctx.Done():
		return radiolink.RxFrame{}, ctx.Err()
	}
}

func (d *chanDevice) MaxFrame() int { return 255 }
func (d *chanDevice) Close() error  { d.once.Do(func() { close(d.closed) }); return nil }

// startRadioNode starts a node whose only link is a radio on air.
func startRadioNode(t *testing.T, air *ether, name string, clearOnly bool) (*Node, *chanDevice) {
	t.Helper()
	n, err := Open(Config{DataDir: t.TempDir(), Name: name, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	dev := air.device()
	radios := map[string]RadioOpener{"fake": func(ctx context.Context, u *url.URL) (radiolink.Device, radiolink.Config, error) {
		return dev, radiolink.Config{ClearOnly: clearOnly, HelloInterval: time.Second}, nil
	}}
	if err := n.Start(Links{Radios: radios}, []string{"fake://air"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, dev
}

func TestMessageOverRadioLink(t *testing.T) {
	air := &ether{}
	a, _ := startRadioNode(t, air, "alice", false)
	b, _ := startRadioNode(t, air, "bob", false)
	a.Chat().AddContact(b.Card(), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aEv, bEv := a.Chat().Subscribe(ctx), b.Chat().Subscribe(ctx)
	if _, err := a.Chat().Send("bob", "over the air"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bEv, func(e chat.Event) bool { return e.Type == "message" && e.Message.Text == "over the air" })
	waitEvent(t, aEv, func(e chat.Event) bool { return e.Message.State == chat.StateDelivered })
	var info *transports.RadioInfo
	for _, p := range a.Router().Peers() {
		if p.Radio != nil {
			info = p.Radio
		}
	}
	if info == nil || math.IsNaN(info.RSSI) || info.RSSI != -80 || info.FramesOut == 0 {
		t.Fatalf("tern peers shows no radio figures for the neighbour: %+v", info)
	}
}

// TestAmateurRadioNeverCarriesCiphertext: on a clear-only radio, an
// encrypted message is held with the reason and never transmitted; a
// message sent --over-air-clear goes, signed, and arrives marked.
func TestAmateurRadioNeverCarriesCiphertext(t *testing.T) {
	air := &ether{}
	a, devA := startRadioNode(t, air, "alice", true)
	b, _ := startRadioNode(t, air, "bob", true)
	a.Chat().AddContact(b.Card(), "")
	waitUntil(t, "alice hears bob", func() bool {
		for _, r := range a.Router().Routes() {
			if r.Dest == [16]byte(b.Identity().Address()) && r.Live {
				return true
			}
		}
		return false
	})
	rec, err := a.Chat().Send("bob", "secret plans")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Note, "amateur-radio") {
		t.Errorf("the sender is not told why the message waits: note %q", rec.Note)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bEv := b.Chat().Subscribe(ctx)
	if _, err := a.Chat().SendWith("bob", "QRV 145.500", chat.SendOptions{OverAirClear: true}); err != nil {
		t.Fatal(err)
	}
	in := waitEvent(t, bEv, func(e chat.Event) bool { return e.Type == "message" })
	if in.Message.Text != "QRV 145.500" || !in.Message.Clear {
		t.Fatalf("bob got %+v, want the clear message marked unencrypted", in.Message)
	}
	// Nothing alice transmitted carries the encrypted message: a sealed
	// payload starts a session (X-Wing ciphertext, 1,120 bytes), so any
	// trace of it would be long; and its text never appears.
	devA.mu.Lock()
	defer devA.mu.Unlock()
	for _, f := range devA.sent {
		if strings.Contains(string(f), "secret plans") {
			t.Fatal("plaintext of the encrypted message on air")
		}
	}
	if hist, _ := b.Chat().History("", 0); len(hist) != 1 {
		t.Errorf("bob has %d messages, want only the clear one: %v", len(hist), fmt.Sprint(hist))
	}
}

// slowDevice is a chanDevice whose frames each take two seconds of air by
// the airtime model (a slow LoRa setting).
type slowDevice struct{ *chanDevice }

func (slowDevice) TimeOnAir(n int) time.Duration { return 2 * time.Second }

// TestSpentAirtimeBudgetQueuesAndSaysWhen: with an EU868 1 % sub-band, the
// radio stops at the legal limit; a message written then is queued, not
// refused, and the neighbour's figures say when the next frame may go.
func TestSpentAirtimeBudgetQueuesAndSaysWhen(t *testing.T) {
	eu, _ := region.Lookup("EU868")
	band, err := eu.Channel(868_100_000, 125_000)
	if err != nil || band.DutyCycle != 0.01 {
		t.Fatalf("868.1 MHz: %+v %v", band, err)
	}
	air := &ether{}
	start := func(name string, usedBefore time.Duration) *Node {
		n, err := Open(Config{DataDir: t.TempDir(), Name: name, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		dev := slowDevice{air.device()}
		budget := region.NewBudget(band, time.Now)
		// Airtime this radio already used in the last hour (earlier
		// traffic): a real hour of waiting is not needed to reach the limit.
		if usedBefore > 0 {
			budget.Commit(time.Now().Add(-10*time.Minute), usedBefore)
		}
		radios := map[string]RadioOpener{"fake": func(ctx context.Context, u *url.URL) (radiolink.Device, radiolink.Config, error) {
			return dev, radiolink.Config{Budget: budget, HelloInterval: time.Hour}, nil
		}}
		if err := n.Start(Links{Radios: radios}, []string{"fake://air"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a, b := start("alice", 34*time.Second), start("bob", 0)
	a.Chat().AddContact(b.Card(), "")
	waitUntil(t, "alice hears bob", func() bool {
		for _, p := range a.Router().Peers() {
			if p.Radio != nil {
				return true
			}
		}
		return false
	})
	// 34 s used + alice's 2 s hello = the 36 s an hour that 1 % allows.
	rec, err := a.Chat().Send("bob", "the budget will not allow this today")
	if err != nil || rec.State != chat.StateQueued {
		t.Fatalf("send while the budget runs out: %+v %v, want queued", rec, err)
	}
	var info *transports.RadioInfo
	waitUntil(t, "the radio reports the budget spent and when it frees", func() bool {
		for _, p := range a.Router().Peers() {
			if p.Radio != nil && p.Radio.NextFree.After(time.Now().Add(30*time.Minute)) {
				info = p.Radio
				return true
			}
		}
		return false
	})
	if info.AirtimeUsed > 36*time.Second {
		t.Errorf("airtime used %v is over the 36 s an hour that 1 %% allows", info.AirtimeUsed)
	}
	if info.Queued == 0 {
		t.Errorf("nothing queued while the budget is spent: %+v", info)
	}
}

// TestRemovingARadioLinkStopsIt: `tern peer rm` of a radio URL closes the
// device and the neighbours heard through it.
func TestRemovingARadioLinkStopsIt(t *testing.T) {
	air := &ether{}
	a, devA := startRadioNode(t, air, "alice", false)
	startRadioNode(t, air, "bob", false)
	waitUntil(t, "alice hears bob", func() bool { return len(a.Router().Peers()) > 0 && a.Router().Peers()[0].State == "up" })
	if err := a.RemovePeer("fake://air"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-devA.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the radio device was not closed")
	}
	waitUntil(t, "bob's link is down at alice", func() bool {
		for _, p := range a.Router().Peers() {
			if p.State == "up" {
				return false
			}
		}
		return true
	})
}
