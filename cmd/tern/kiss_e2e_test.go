package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/transports/kiss"
)

// Issue 5 acceptance: amateur packet radio end to end, with two daemons as
// separate processes, each on its own real Dire Wolf TNC (the audio of the
// two TNCs is looped into each other by ../shared/harness/direwolf-pair).

// Station callsigns of the two daemons.
const callA, callB = "N0CALL-7", "N0CALL-8"

// hamText is n bytes of readable text, tagged so that two messages differ.
func hamText(tag string, n int) string {
	s := tag + ": " + strings.Repeat("Net control: the repeater on the ridge is down, relay traffic through the valley digipeater. ", n/90+2)
	return s[:n]
}

// hamPair is two daemons, alice on TNC A and bob on TNC B, with the radio
// as their only path.
type hamPair struct {
	a, b *daemon
	tnc  *tncPair
	airB *capture // what TNC B decoded from the air (alice's transmissions)
	tapA *capture // what alice's daemon handed TNC A (nil without a tap)
}

// startHamPair starts the TNCs and both daemons and waits until each hears
// the other. With tap, alice reaches her TNC through a relay that records
// every frame she asks it to transmit.
func startHamPair(t *testing.T, baud int, dwExtra string, tap bool) *hamPair {
	t.Helper()
	p := &hamPair{tnc: startTNCs(t, baud, dwExtra)}
	p.airB = listenAir(t, p.tnc.PortB)
	portA := p.tnc.PortA
	if tap {
		portA, p.tapA = tapTNC(t, p.tnc.PortA)
	}
	p.a = startDaemon(t, "alice", "--listen", "off", "--link", p.tnc.url(portA, callA))
	p.b = startDaemon(t, "bob", "--listen", "off", "--link", p.tnc.url(p.tnc.PortB, callB))
	p.a.addContact(p.b)
	p.b.addContact(p.a)
	t.Cleanup(func() {
		if t.Failed() {
			pa, _ := p.a.cli("peers")
			t.Logf("alice peers:\n%s\nalice log:\n%s\nbob log:\n%s", pa, p.a.logText(), p.b.logText())
			t.Logf("TNC B heard %d frames from alice; TNC logs in %s:\n%s", len(framesFrom(p.airB.Frames(), callA)), p.tnc.Dir, p.tnc.logTail())
		}
	})
	waitLong(t, "alice and bob hear each other over the TNCs", 60*time.Second, func() bool {
		return p.a.hasRoute(p.b) && p.b.hasRoute(p.a)
	})
	return p
}

// incoming returns the incoming record with text, if any.
func incoming(recs []chat.Record, text string) (chat.Record, bool) {
	for _, r := range recs {
		if r.Incoming && r.Text == text {
			return r, true
		}
	}
	return chat.Record{}, false
}

// sendClear sends text from one daemon to a contact --over-air-clear and
// waits until the other daemon shows it, signed by the sender and marked
// clear. It returns the time from send to delivery.
func sendClear(t *testing.T, from, to *daemon, text string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var rec chat.Record
	from.do("POST", "/v1/messages", api.Send{To: to.name, Text: text, OverAirClear: true}, &rec)
	if !rec.Clear || rec.Note != "" {
		t.Errorf("%s's clear message record: clear %v, note %q; want clear and no note", from.name, rec.Clear, rec.Note)
	}
	var got chat.Record
	waitLong(t, to.name+" receives the clear message from "+from.name, timeout, func() bool {
		var ok bool
		got, ok = incoming(to.history(from.name), text)
		return ok
	})
	took := time.Since(start)
	// The receiver opened the signed bundle: the sender it names is the
	// key that signed it (chat drops clear bundles whose signature fails).
	if got.Peer != from.addr || !got.Clear {
		t.Errorf("%s's record of the message: peer %s clear %v; want peer %s (the signer) and clear", to.name, got.Peer, got.Clear, from.addr)
	}
	return took
}

// framesFrom returns the Tern frames (UI frames to TERN) from call.
func framesFrom(frames []kiss.AX25Frame, call string) []kiss.AX25Frame {
	var out []kiss.AX25Frame
	for _, f := range frames {
		if f.Src.String() == call && f.Dest.Same(kiss.DefaultDest) {
			out = append(out, f)
		}
	}
	return out
}

// carrying counts the frames whose info field holds a 24-byte piece of s.
func carrying(frames []kiss.AX25Frame, s string) int {
	n := 0
	for _, f := range frames {
		for i := 0; i+24 <= len(s); i += 12 {
			if bytes.Contains(f.Info, []byte(s[i:i+24])) {
				n++
				break
			}
		}
	}
	return n
}

// clearExchange is the 600-byte exchange: alice -> bob clear, fragmented
// over AX.25, and bob's clear reply.
func clearExchange(t *testing.T, p *hamPair, timeout time.Duration) {
	t.Helper()
	text := hamText(fmt.Sprintf("%d baud", p.tnc.Baud), 600)
	took := sendClear(t, p.a, p.b, text, timeout)
	t.Logf("%d baud: 600-byte clear message alice -> bob delivered in %v", p.tnc.Baud, took.Round(time.Millisecond))
	heard := framesFrom(p.airB.Frames(), callA)
	if n := carrying(heard, text); n < 2 {
		t.Errorf("TNC B heard the text in %d frames from %s, want it fragmented over at least 2 (a 256-byte info field cannot hold it)", n, callA)
	}
	reply := "73 de N0CALL-8, copied your 600 bytes"
	took = sendClear(t, p.b, p.a, reply, timeout)
	t.Logf("%d baud: clear reply bob -> alice delivered in %v", p.tnc.Baud, took.Round(time.Millisecond))
}

// TestKISSClearTextOverDireWolf1200: a 600-byte text sent --over-air-clear
// crosses real 1200-baud TNCs, fragmented, arrives signed and marked
// unencrypted, and the receiver can answer the same way.
func TestKISSClearTextOverDireWolf1200(t *testing.T) {
	t.Parallel()
	p := startHamPair(t, 1200, dwAudio1200, false)
	clearExchange(t, p, 90*time.Second)
	out, err := p.b.cli("inbox")
	if err != nil || !strings.Contains(out, "[signed, sent unencrypted]") || !strings.Contains(out, "(via packet radio)") {
		t.Errorf("tern inbox does not mark the clear message as unencrypted and come over packet radio: %v\n%s", err, out)
	}
	// The same from the command line: `tern send --over-air-clear`.
	const cq = "QSL via the command line"
	out, err = p.b.cli("send", "--over-air-clear", "alice", cq)
	if err != nil || !strings.Contains(out, "signed but unencrypted") || strings.Contains(out, "amateur-radio") {
		t.Errorf("tern send --over-air-clear: %v\n%s", err, out)
	}
	waitLong(t, "alice receives bob's message sent from the command line", 60*time.Second, func() bool {
		r, ok := incoming(p.a.history("bob"), cq)
		return ok && r.Clear && r.Peer == p.b.addr
	})
	for _, f := range framesFrom(p.airB.Frames(), callA) {
		if len(f.Info) > kiss.MaxInfo {
			t.Errorf("a frame on air has a %d-byte info field, over the AX.25 limit of %d", len(f.Info), kiss.MaxInfo)
		}
	}
}

// TestKISSDeliveryUnderStress repeats the 600-byte exchange at 9600 baud
// and at 1200 baud with bit errors on the audio (frames lost to CRC
// failures: fragment repair and custody retries must finish the job).
func TestKISSDeliveryUnderStress(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		baud  int
		extra string
	}{
		{"9600 baud", 9600, ""},
		{"1200 baud BER 1e-4", 1200, dwAudio1200 + " -e 1e-4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := startHamPair(t, c.baud, c.extra, true)
			clearExchange(t, p, 120*time.Second)
			sent, heard := len(framesFrom(p.tapA.Frames(), callA)), len(framesFrom(p.airB.Frames(), callA))
			t.Logf("%s: alice handed TNC A %d frames, TNC B decoded %d of them", c.name, sent, heard)
		})
	}
}

// TestKISSNeverCarriesCiphertext: with the amateur link as alice's only
// path, an end-to-end encrypted message is held, alice is told why, bob
// never gets it, and nothing alice hands her TNC (nor anything TNC B hears)
// carries its sealed payload or its text. A clear message sent after it
// goes through, so the link was working all along.
func TestKISSNeverCarriesCiphertext(t *testing.T) {
	t.Parallel()
	p := startHamPair(t, 1200, dwAudio1200, true)
	const secret = "the relay site key is in the blue box"
	var rec chat.Record
	p.a.do("POST", "/v1/messages", api.Send{To: "bob", Text: secret}, &rec)
	if rec.Clear || !strings.Contains(rec.Note, "amateur-radio") || !strings.Contains(rec.Note, "--over-air-clear") {
		t.Errorf("the sender is not told why the encrypted message waits: clear %v, note %q", rec.Clear, rec.Note)
	}
	// The held bundle, as alice's store has it.
	var held []api.HeldBundle
	p.a.do("GET", "/v1/bundles", nil, &held)
	var sealed []byte
	for _, h := range held {
		if h.ID == rec.Bundle {
			b, err := bundle.Unmarshal(h.Raw)
			if err != nil {
				t.Fatalf("alice's held bundle does not decode: %v", err)
			}
			if b.Kind != bundle.KindData {
				t.Fatalf("the encrypted message is a %v bundle, want data", b.Kind)
			}
			sealed = b.Payload
		}
	}
	if len(sealed) < 16 {
		t.Fatalf("alice does not hold the encrypted message's bundle %s (held: %d bundles)", rec.Bundle, len(held))
	}

	// A clear message after it: when bob has it, and alice has its receipt,
	// whatever alice would have sent of the encrypted one has had its turn.
	clear := hamText("after the secret", 300)
	sendClear(t, p.a, p.b, clear, 90*time.Second)
	waitLong(t, "alice sees the clear message delivered", 60*time.Second, func() bool {
		for _, r := range p.a.history("bob") {
			if r.Text == clear {
				return r.State == chat.StateDelivered
			}
		}
		return false
	})

	if _, ok := incoming(p.b.history("alice"), secret); ok {
		t.Fatal("bob received the encrypted message over the amateur link")
	}
	tapped := framesFrom(p.tapA.Frames(), callA)
	air := framesFrom(p.airB.Frames(), callA)
	if len(tapped) == 0 || len(air) == 0 {
		t.Fatalf("captured %d frames from alice at her TNC and %d on air: the capture is broken", len(tapped), len(air))
	}
	for where, frames := range map[string][]kiss.AX25Frame{"handed to TNC A": tapped, "heard by TNC B": air} {
		for _, f := range frames {
			if bytes.Contains(f.Info, []byte(secret)) {
				t.Errorf("a frame %s carries the encrypted message's text", where)
			}
			for i := 0; i+16 <= len(sealed); i++ {
				if bytes.Contains(f.Info, sealed[i:i+16]) {
					t.Fatalf("a frame %s carries bytes %d-%d of the sealed payload", where, i, i+16)
				}
			}
		}
	}
	t.Logf("%d frames handed to TNC A and %d heard by TNC B checked: none carries the %d-byte sealed payload", len(tapped), len(air), len(sealed))
	// Still held at alice, waiting for a path that allows encryption.
	p.a.do("GET", "/v1/bundles", nil, &held)
	found := false
	for _, h := range held {
		found = found || h.ID == rec.Bundle
	}
	if !found {
		t.Error("alice no longer holds the encrypted message, yet no path may carry it")
	}
}

// TestKISSLinkWithoutCallsign: a KISS link URL without call= is refused
// with the callsign explanation: `tern run` names it and stops at once, and
// the opener itself (what the daemon runs, and retries, for a saved link)
// fails with kiss.ErrNoCallsign before touching the TNC.
func TestKISSLinkWithoutCallsign(t *testing.T) {
	t.Parallel()
	const why = "amateur-radio links need your callsign: add ?call=YOURCALL-N"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ternBin, "run", "--data", filepath.Join(t.TempDir(), "nocall"),
		"--listen", "off", "--mdns", "off", "--web", "off", "--link", "kiss+tcp://127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), why) {
		t.Errorf("tern run with a KISS link without callsign: %v\n%s\nwant a failure naming the callsign", err, out)
	}
	for _, raw := range []string{"kiss+tcp://127.0.0.1:1", "kiss+serial:///dev/ttyUSB0?baud=9600"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = kissOpener(slog.New(slog.DiscardHandler))(ctx, u)
		if !errors.Is(err, kiss.ErrNoCallsign) || !strings.Contains(err.Error(), why) {
			t.Errorf("opening %s: %v, want the callsign error", raw, err)
		}
	}
}

// BenchmarkKISSGoodput measures a 4 KB clear message alice -> bob over real
// Dire Wolf TNCs, from the send to bob's delivery: goodput in bytes/s and
// as a share of the line rate.
func BenchmarkKISSGoodput(b *testing.B) {
	for _, c := range []struct {
		baud  int
		extra string
	}{{1200, dwAudio1200}, {9600, ""}} {
		b.Run(fmt.Sprintf("%d baud", c.baud), func(b *testing.B) {
			tnc := startTNCs(b, c.baud, c.extra)
			a := startBenchDaemon(b, "alice", "--listen", "off", "--link", tnc.url(tnc.PortA, callA))
			bob := startBenchDaemon(b, "bob", "--listen", "off", "--link", tnc.url(tnc.PortB, callB))
			ctx := context.Background()
			must := func(err error) {
				if err != nil {
					b.Fatal(err)
				}
			}
			must(a.c.Do(ctx, "POST", "/v1/contacts", api.AddContact{URI: bob.uri, Name: "bob"}, nil))
			must(bob.c.Do(ctx, "POST", "/v1/contacts", api.AddContact{URI: a.uri, Name: "alice"}, nil))
			waitLong(b, "alice hears bob", 60*time.Second, func() bool {
				var s api.Status
				if a.c.Do(ctx, "GET", "/v1/status", nil, &s) != nil {
					return false
				}
				for _, r := range s.Routes {
					if fmt.Sprintf("%x", r.Dest[:]) == bob.addr && r.Live {
						return true
					}
				}
				return false
			})
			var total time.Duration
			i := 0
			for b.Loop() {
				text := hamText(fmt.Sprintf("bench %d", i), 4096)
				i++
				start := time.Now()
				must(a.c.Do(ctx, "POST", "/v1/messages", api.Send{To: "bob", Text: text, OverAirClear: true}, nil))
				waitLong(b, "bob receives the 4 KB message", 5*time.Minute, func() bool {
					var recs []chat.Record
					if bob.c.Do(ctx, "GET", "/v1/messages?peer=alice", nil, &recs) != nil {
						return false
					}
					_, ok := incoming(recs, text)
					return ok
				})
				total += time.Since(start)
			}
			rate := float64(4096*i) / total.Seconds()
			b.ReportMetric(rate, "B/s")
			b.ReportMetric(rate/(float64(c.baud)/8), "goodput-share")
		})
	}
}

// TestKISSOpenerMarksAmateurRadio: the opener connects to the TNC and sets
// the link up as amateur radio: clear only, no airtime budget, 256-byte
// frames, the callsign in the link's name.
func TestKISSOpenerMarksAmateurRadio(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() // the kernel completes the connection: no need to accept it
	u, err := url.Parse("kiss+tcp://" + l.Addr().String() + "?call=N0CALL-7")
	if err != nil {
		t.Fatal(err)
	}
	dev, cfg, err := kissOpener(slog.New(slog.DiscardHandler))(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if !cfg.ClearOnly || cfg.Budget != nil || dev.MaxFrame() != kiss.MaxInfo || !strings.Contains(cfg.Name, "N0CALL-7") {
		t.Errorf("KISS link config: clear only %v, budget %v, max frame %d, name %q; want clear only, no budget, %d, the callsign",
			cfg.ClearOnly, cfg.Budget, dev.MaxFrame(), cfg.Name, kiss.MaxInfo)
	}
}
