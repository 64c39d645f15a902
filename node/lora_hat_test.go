package node

import (
	"context"
	"github.com/ternmesh/tern/lora/chipdev"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/hw"
	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/lora/chipemu"
	"github.com/ternmesh/tern/lora/radiosim"
	"github.com/ternmesh/tern/lora/sx126x"
	"github.com/ternmesh/tern/lora/sx127x"
	"github.com/ternmesh/tern/router"
	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/radiolink"
)

// Acceptance of issue 4 on the node: two nodes on LoRa HATs (an emulated
// Waveshare SX1262 HAT and an Adafruit RFM95 bonnet on one simulated
// channel) chat both ways, `tern peers` figures show RSSI and SNR, and a
// chip that stops answering takes the link down and back up without losing
// the message.

const hatFreq = 869_525_000

// hatParams: SF7 at 250 kHz keeps frames short (a full 255-byte frame is
// about 200 ms on air) so the session set-up crosses in a second or two.
var hatParams = airtime.Params{SF: 7, BandwidthHz: 250000, CR: 1, Preamble: 16, CRC: true}

// logRecorder keeps the messages logged by a node and its driver.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { sb.WriteString(" " + a.String()); return true })
	l.mu.Lock()
	l.msgs = append(l.msgs, sb.String())
	l.mu.Unlock()
	return nil
}

// count returns how many logged messages contain s.
func (l *logRecorder) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// hatChip is what both SPI chip drivers offer.
type hatChip interface {
	radiolink.Device
	radiolink.AirtimeModel
	radiolink.CarrierSense
}

// watchedDevice counts the transmissions the link layer saw fail.
type watchedDevice struct {
	hatChip
	txErrors *atomic.Int64
}

func (d watchedDevice) Transmit(ctx context.Context, f []byte) error {
	err := d.hatChip.Transmit(ctx, f)
	if err != nil {
		d.txErrors.Add(1)
	}
	return err
}

type hatNode struct {
	*Node
	logs     *logRecorder
	txErrors *atomic.Int64
}

// startHATNode starts a node whose only link is the LoRa HAT named board,
// opened through opener as the daemon opens it: hw.Open by board name,
// then the driver of the board's chip.
func startHATNode(t *testing.T, bench *chipemu.Bench, o hw.Opener, board, name string) *hatNode {
	t.Helper()
	h := &hatNode{logs: &logRecorder{}, txErrors: &atomic.Int64{}}
	log := slog.New(h.logs)
	n, err := Open(Config{DataDir: t.TempDir(), Name: name, Logger: log,
		Router: router.Config{RetryMin: time.Second, RetryMax: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	h.Node = n
	open := func(ctx context.Context, u *url.URL) (radiolink.Device, radiolink.Config, error) {
		b, err := hw.Lookup(u.Host)
		if err != nil {
			return nil, radiolink.Config{}, err
		}
		hd, err := hw.Open(b, o)
		if err != nil {
			return nil, radiolink.Config{}, err
		}
		var chip hatChip
		switch b.Chip {
		case hw.SX1262:
			chip, err = sx126x.Open(hd.Conn, sx126x.Pins{Reset: hd.Reset, Busy: hd.Busy, DIO1: hd.IRQ}, sx126x.Config{
				FrequencyHz: hatFreq, Modulation: hatParams, TCXOVolts: b.TCXOVolts, DIO2RFSwitch: b.DIO2RFSwitch,
				Timing: chipdev.Timing{RetryInterval: 200 * time.Millisecond, Now: bench.Now, Sleep: bench.Sleep, Logger: log}})
		default:
			chip, err = sx127x.Open(hd.Conn, sx127x.Pins{Reset: hd.Reset, DIO0: hd.IRQ}, sx127x.Config{
				FrequencyHz: hatFreq, Modulation: hatParams,
				Timing: chipdev.Timing{RetryInterval: 200 * time.Millisecond, Now: bench.Now, Sleep: bench.Sleep, Logger: log}})
		}
		if err != nil {
			hd.Close()
			return nil, radiolink.Config{}, err
		}
		return watchedDevice{hatChip: chip, txErrors: h.txErrors}, radiolink.Config{HelloInterval: time.Second}, nil
	}
	if err := n.Start(Links{Radios: map[string]RadioOpener{"lora+spi": open}}, []string{"lora+spi://" + board}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return h
}

// hatPair is node A on a Waveshare SX1262 HAT and node B on an Adafruit
// RFM95 bonnet, both on one emulated channel, each knowing the other's card.
func hatPair(t *testing.T) (a, b *hatNode, c62 *chipemu.SX1262, c76 *chipemu.SX1276) {
	bench := chipemu.NewBench(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), radiosim.Config{DefaultRSSIdBm: -104, Seed: 4}, 40)
	bench.Start()
	t.Cleanup(bench.Close) // runs after the nodes close: drivers first
	ws, _ := hw.Lookup("waveshare-sx1262")
	ada, _ := hw.Lookup("adafruit-rfm9x")
	oA, oB := chipemu.NewOpener(), chipemu.NewOpener()
	c62 = bench.NewBoardSX1262("waveshare", ws)
	c62.Attach(oA, ws)
	c76 = bench.NewSX1276("adafruit")
	c76.Attach(oB, ada)
	a = startHATNode(t, bench, oA, "waveshare-sx1262", "alice")
	b = startHATNode(t, bench, oB, "adafruit-rfm9x", "bob")
	if _, err := a.Chat().AddContact(b.Card(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Chat().AddContact(a.Card(), ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, v := range append(c62.Violations(), c76.Violations()...) {
			t.Errorf("protocol violation: %v", v)
		}
	})
	return a, b, c62, c76
}

// awaitMessage waits (up to 30 s) for a message with text on ev.
func awaitMessage(t *testing.T, ev <-chan chat.Event, who, text string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-ev:
			if e.Type == "message" && e.Message.Text == text {
				return
			}
		case <-timeout:
			t.Fatalf("%s did not receive %q within 30 s", who, text)
		}
	}
}

// awaitCond polls cond for up to 30 s.
func awaitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

func radioPeer(n *Node) *transports.RadioInfo {
	for _, p := range n.Router().Peers() {
		if p.Radio != nil {
			return p.Radio
		}
	}
	return nil
}

func TestChatOverLoRaHATs(t *testing.T) {
	a, b, _, _ := hatPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aEv, bEv := a.Chat().Subscribe(ctx), b.Chat().Subscribe(ctx)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []*hatNode{a, b} {
				n.logs.mu.Lock()
				t.Logf("%s log:\n%s", n.Card().Name, strings.Join(n.logs.msgs, "\n"))
				n.logs.mu.Unlock()
				t.Logf("%s metrics %+v peers %+v", n.Card().Name, n.Router().Metrics(), n.Router().Peers())
			}
		}
	})
	start := time.Now()
	if _, err := a.Chat().Send("bob", "hello from the roof"); err != nil {
		t.Fatal(err)
	}
	awaitMessage(t, bEv, "bob (RFM95)", "hello from the roof")
	t.Logf("SX1262 -> SX1276, with the session set-up: %v", time.Since(start))
	start = time.Now()
	if _, err := b.Chat().Send("alice", "hello from the mast"); err != nil {
		t.Fatal(err)
	}
	awaitMessage(t, aEv, "alice (SX1262)", "hello from the mast")
	t.Logf("SX1276 -> SX1262: %v", time.Since(start))

	// What `tern peers` prints: RSSI and SNR of the neighbour's last frame.
	// The channel puts every frame at -104 dBm; the noise floor of a 250 kHz
	// channel is about -114 dBm, so the SNR is about 10 dB.
	for _, n := range []*hatNode{a, b} {
		info := radioPeer(n.Node)
		if info == nil {
			t.Fatalf("%s: no radio figures in Router().Peers()", n.Card().Name)
		}
		if info.RSSI != -104 || math.IsNaN(info.SNR) || info.SNR < 8 || info.SNR > 12 || info.FramesIn == 0 || info.FramesOut == 0 {
			t.Errorf("%s: radio figures %+v, want RSSI -104 dBm, SNR about 10 dB and frames both ways", n.Card().Name, *info)
		}
		if !strings.HasPrefix(info.Radio, "lora+spi:") {
			t.Errorf("%s: radio named %q", n.Card().Name, info.Radio)
		}
	}
}

// A chip that stops answering (BUSY stuck high on the SX1262, then no
// interrupt from the SX1276) fails the transmissions, is logged as down,
// and once the fault clears the link comes back and the message sent
// meanwhile gets through.
func TestLoRaHATChipHangsAndRecovers(t *testing.T) {
	a, b, c62, c76 := hatPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aEv, bEv := a.Chat().Subscribe(ctx), b.Chat().Subscribe(ctx)
	if _, err := a.Chat().Send("bob", "before the fault"); err != nil {
		t.Fatal(err)
	}
	awaitMessage(t, bEv, "bob", "before the fault")

	for _, tc := range []struct {
		name          string
		node          *hatNode
		fault         func(bool)
		down, up      string
		from, to, msg string
		ev            <-chan chat.Event
	}{
		{name: "SX1262 BUSY stuck high", node: a,
			fault: func(on bool) { c62.SetFaults(chipemu.Faults{BusyStuck: on}) },
			down:  "sx126x link down", up: "sx126x link up",
			from: "alice", to: "bob", msg: "sent while the HAT hung", ev: bEv},
		{name: "SX1276 without interrupts", node: b,
			fault: func(on bool) { c76.SetFaults(chipemu.Faults{NoIRQ: on}) },
			down:  "sx127x link down", up: "sx127x link up",
			from: "bob", to: "alice", msg: "sent while the bonnet hung", ev: aEv},
	} {
		downs, ups, txErrs := tc.node.logs.count(tc.down), tc.node.logs.count(tc.up), tc.node.txErrors.Load()
		tc.fault(true)
		start := time.Now()
		sender := a
		if tc.from == "bob" {
			sender = b
		}
		if _, err := sender.Chat().Send(tc.to, tc.msg); err != nil {
			t.Fatal(err)
		}
		awaitCond(t, tc.name+": the link layer sees transmissions fail and the driver logs the link down", func() bool {
			return tc.node.txErrors.Load() > txErrs && tc.node.logs.count(tc.down) > downs
		})
		t.Logf("%s: down and logged after %v (%d failed transmissions)", tc.name, time.Since(start), tc.node.txErrors.Load()-txErrs)
		recipient := b
		if tc.to == "alice" {
			recipient = a
		}
		if hist, _ := recipient.Chat().History("", 0); hasText(hist, tc.msg) {
			t.Fatalf("%s: %q arrived while the chip was hung", tc.name, tc.msg)
		}
		tc.fault(false)
		start = time.Now()
		awaitMessage(t, tc.ev, tc.to, tc.msg)
		t.Logf("%s: message through %v after the fault cleared", tc.name, time.Since(start))
		if tc.node.logs.count(tc.up) <= ups {
			t.Errorf("%s: the driver never logged the link up again", tc.name)
		}
	}
}

func hasText(recs []chat.Record, text string) bool {
	for _, r := range recs {
		if r.Text == text {
			return true
		}
	}
	return false
}
