package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/call"
)

// writeTone writes seconds of a sine at freq Hz as a WAV file: 48 kHz,
// mono, 16-bit, at half of full scale.
func writeTone(t *testing.T, path string, freq float64, seconds int) {
	t.Helper()
	const rate = 48000
	n := rate * seconds
	b := make([]byte, 44+2*n)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16) // fmt chunk size
	binary.LittleEndian.PutUint16(b[20:], 1)  // PCM
	binary.LittleEndian.PutUint16(b[22:], 1)  // mono
	binary.LittleEndian.PutUint32(b[24:], rate)
	binary.LittleEndian.PutUint32(b[28:], rate*2)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		v := int16(16000 * math.Sin(2*math.Pi*freq*float64(i)/rate))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lossyProxy is a UDP relay in front of a daemon's QUIC port that drops a
// share of the packets, both ways, chosen by a seeded generator. QUIC
// datagrams are never retransmitted, so a dropped packet is a lost voice
// frame; the bundles on QUIC streams are retransmitted and still arrive.
type lossyProxy struct {
	ln       *net.UDPConn
	target   *net.UDPAddr
	perMille atomic.Int64
	mu       sync.Mutex
	rnd      *rand.Rand
	ups      map[string]*net.UDPConn
	dropped  atomic.Int64
	passed   atomic.Int64
}

func startLossyProxy(t *testing.T, target string) *lossyProxy {
	t.Helper()
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, target: ta, rnd: rand.New(rand.NewPCG(8, 5)), ups: map[string]*net.UDPConn{}}
	t.Cleanup(p.close)
	go p.run()
	return p
}

func (p *lossyProxy) addr() string { return p.ln.LocalAddr().String() }

// setLoss sets the share of packets dropped, in per cent.
func (p *lossyProxy) setLoss(percent float64) { p.perMille.Store(int64(percent * 10)) }

func (p *lossyProxy) drop() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rnd.Int64N(1000) < p.perMille.Load() {
		p.dropped.Add(1)
		return true
	}
	p.passed.Add(1)
	return false
}

func (p *lossyProxy) run() {
	buf := make([]byte, 65536)
	for {
		n, from, err := p.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		up := p.ups[from.String()]
		if up == nil {
			up, err = net.DialUDP("udp", nil, p.target)
			if err != nil {
				p.mu.Unlock()
				continue
			}
			p.ups[from.String()] = up
			go p.back(up, from)
		}
		p.mu.Unlock()
		if !p.drop() {
			up.Write(buf[:n])
		}
	}
}

// back relays the daemon's answers to the client at from.
func (p *lossyProxy) back(up *net.UDPConn, from *net.UDPAddr) {
	buf := make([]byte, 65536)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		if !p.drop() {
			p.ln.WriteToUDP(buf[:n], from)
		}
	}
}

func (p *lossyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, up := range p.ups {
		up.Close()
	}
	p.mu.Unlock()
}

// callBrowser is Chromium with a fake microphone that plays the tone file.
func callBrowser(t *testing.T, name, tone string) *browser {
	return newBrowser(t, name,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", tone),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
}

// heard is what a call page decoded (window.ternCall.debug()).
type heard struct {
	Received, Decoded, Late, Lost int
	Freq, RMS, Jitter             float64
	Target, Buffered              float64
	Player                        struct{ Queued, Played, Concealed, Underruns, Skipped, Rebuffers int }
}

func (b *browser) heard() heard {
	b.t.Helper()
	var h heard
	s := b.eval(`JSON.stringify(window.ternCall.debug())`)
	if err := json.Unmarshal([]byte(s), &h); err != nil || s == "null" {
		b.t.Fatalf("%s: call debug %q: %v", b.name, s, err)
	}
	return h
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, js, err)
	}
	return s
}

// waitHeard polls the page until ok holds for what it decoded.
func (b *browser) waitHeard(what string, ok func(heard) bool) heard {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h := b.heard()
		if ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: %s: the page decoded %+v\npage: %s", b.name, what, h, b.page())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var latencyText = regexp.MustCompile(`^\d+ ms$`)

// lossShown is the loss figure the call page shows, in per cent.
func (b *browser) lossShown() float64 {
	b.t.Helper()
	s := strings.TrimSuffix(b.text("#call-stat-loss"), " %")
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		b.t.Fatalf("%s: the loss shown is %q", b.name, s)
	}
	return v
}

// TestWebUIVoiceCallBetweenTwoBrowsers is issue 8's voice acceptance: two
// daemons, two headless Chromiums whose microphones play different tones
// (Alice 440 Hz, Bob 1 kHz). Alice calls from the conversation, Bob answers
// from the ringing panel; each page decodes the other's tone with WebCodecs
// and shows latency and loss. With 5 % of the UDP packets between the
// daemons dropped, audio keeps flowing, the tones are still right and the
// pages show about 5 % loss. Hanging up leaves a call record in both
// conversations.
func TestWebUIVoiceCallBetweenTwoBrowsers(t *testing.T) {
	chromiumPath(t)
	dir := t.TempDir()
	toneA, toneB := filepath.Join(dir, "alice-440.wav"), filepath.Join(dir, "bob-1000.wav")
	writeTone(t, toneA, 440, 20)
	writeTone(t, toneB, 1000, 20)
	a, linkA := startWebDaemon(t, "alice-node")
	b, linkB := startWebDaemon(t, "bob-node")
	defer func() {
		if t.Failed() {
			t.Logf("alice log:\n%s\nbob log:\n%s", a.logText(), b.logText())
		}
	}()
	ba, bb := callBrowser(t, "alice's browser", toneA), callBrowser(t, "bob's browser", toneB)
	cardA, cardB := ba.onboard(linkA, "Alice"), bb.onboard(linkB, "Bob")
	ba.addContact(cardB, "Bob")
	bb.addContact(cardA, "Alice")

	// Alice reaches Bob's QUIC port only through the lossy relay.
	proxy := startLossyProxy(t, strings.TrimPrefix(b.quic, "quic://"))
	a.do("POST", "/v1/peers", api.AddPeer{URL: "quic://" + proxy.addr() + "?id=" + b.addr}, nil)
	waitFor(t, "alice and bob have live routes", func() bool { return a.hasRoute(b) && b.hasRoute(a) })

	ba.openChat("Bob")
	ba.do("call Bob", click("#chat-call"), visible(`#call-panel[data-state="ringing"]`))
	bb.do("see Alice calling and answer", visible("#call-accept"), click("#call-accept"), visible(`#call-panel[data-state="active"]`))
	if who := bb.text("#call-peer"); who != "Alice" {
		t.Errorf("bob's call panel names %q", who)
	}
	ba.do("see the call connected", visible(`#call-panel[data-state="active"]`))

	// Clean path: each side decodes the other's tone.
	const enough = 150 // 3 s of audio
	hb := bb.waitHeard("decode alice's tone", func(h heard) bool { return h.Decoded >= enough && h.RMS > 0.02 })
	ha := ba.waitHeard("decode bob's tone", func(h heard) bool { return h.Decoded >= enough && h.RMS > 0.02 })
	if math.Abs(hb.Freq-440) > 10 || math.Abs(ha.Freq-1000) > 10 {
		t.Errorf("dominant frequencies: bob hears %v Hz (want 440), alice hears %v Hz (want 1000)", hb.Freq, ha.Freq)
	}
	for _, br := range []*browser{ba, bb} {
		br.do("see live stats", chromedp.Poll[chromedp.Void](`document.querySelector('#call-stat-latency').textContent.endsWith(' ms')`))
		if lat := br.text("#call-stat-latency"); !latencyText.MatchString(lat) {
			t.Errorf("%s shows latency %q", br.name, lat)
		}
		if loss := br.lossShown(); loss > 1 {
			t.Errorf("%s shows %v %% loss on a clean path", br.name, loss)
		}
	}
	t.Logf("clean path: bob heard %+v; alice heard %+v; alice shows latency %s, jitter %s",
		hb, ha, ba.text("#call-stat-latency"), ba.text("#call-stat-jitter"))

	// 5 % of the packets lost, both ways.
	proxy.setLoss(5)
	before := [2]heard{ha, hb}
	for i, br := range []*browser{ba, bb} {
		// The figure shown covers the last 256 frames: wait until as many
		// crossed the lossy path, and the next stats message came.
		h := br.waitHeard("receive 300 frames over the lossy path", func(h heard) bool { return h.Received-before[i].Received >= 300 })
		time.Sleep(600 * time.Millisecond) // stats come twice a second
		loss := br.lossShown()
		want := []float64{1000, 440}[i]
		// 256 frames at 5 %: 12.8 lost on average; 1.5 % to 10 % is 4 to 25.
		if loss < 1.5 || loss > 10 {
			t.Errorf("%s shows %v %% loss with 5 %% of packets dropped", br.name, loss)
		}
		if h.Decoded-before[i].Decoded < 200 || h.Lost == before[i].Lost || h.Player.Concealed == before[i].Player.Concealed {
			t.Errorf("%s under loss: decoded %d more frames, %d more lost, %d more concealed; want audio flowing with losses concealed",
				br.name, h.Decoded-before[i].Decoded, h.Lost-before[i].Lost, h.Player.Concealed-before[i].Player.Concealed)
		}
		if math.Abs(h.Freq-want) > 10 {
			t.Errorf("%s hears %v Hz under loss, want %v", br.name, h.Freq, want)
		}
		t.Logf("%s under loss: shows loss %v %%, latency %s, jitter %s; decoded %+v", br.name, loss,
			br.text("#call-stat-latency"), br.text("#call-stat-jitter"), h)
	}
	t.Logf("proxy dropped %d of %d packets", proxy.dropped.Load(), proxy.dropped.Load()+proxy.passed.Load())
	ba.screenshot("call.png")
	proxy.setLoss(0)

	// Alice hangs up: both see the call ended, and a record of it in the
	// conversation.
	ba.do("hang up", click("#call-hangup"), visible(`#call-panel[data-state="ended"]`))
	bb.do("see the call end", visible(`#call-panel[data-state="ended"]`))
	if reason := bb.text("#call-error"); !strings.Contains(reason, "hung up") {
		t.Errorf("bob's panel says %q after alice hung up", reason)
	}
	bb.do("see the call in the conversation", click("#call-close"), visible(`#contacts button[data-name="Alice"]`))
	bb.openChat("Alice")
	bb.do("see the call record", visible(`#messages li.call-rec[data-state="ended"]`))
	if got := bb.text(`#messages li.call-rec .text`); !strings.Contains(got, "Incoming call") {
		t.Errorf("bob's conversation shows the call as %q", got)
	}
	ba.do("see the call record", visible(`#messages li.call-rec[data-state="ended"]`))
	if got := ba.text(`#messages li.call-rec .text`); !strings.Contains(got, "Outgoing call") {
		t.Errorf("alice's conversation shows the call as %q", got)
	}
	var calls []struct{ State string }
	a.do("GET", "/v1/calls", nil, &calls)
	if len(calls) != 1 || calls[0].State != "ended" {
		t.Errorf("alice's call history: %+v", calls)
	}
}

// TestWebUICallOverRadioOnlyExplainsWhy: two daemons that reach each other
// only through LoRa modems (emulated RNodes on one simulated channel).
// Alice presses Call: the page says voice needs an internet or LAN path and
// that the only path is a radio link; nothing rings, and Bob gets a missed
// call by a bundle over the radio.
func TestWebUICallOverRadioOnlyExplainsWhy(t *testing.T) {
	chromiumPath(t)
	radioA, radioB := rnodeLinks(t, 3)
	a, linkA := startWebDaemon(t, "alice", "--listen", "off", "--link", radioA)
	b := startDaemon(t, "bob", "--listen", "off", "--link", radioB)
	b.addContact(a)
	ba := newBrowser(t, "alice's browser")
	ba.onboard(linkA, "Alice")
	ba.addContact(b.card(), "bob")
	waitFor(t, "alice hears bob over the radio", func() bool { return a.hasRoute(b) })

	ba.openChat("bob")
	ba.do("press Call", click("#chat-call"), visible("#call-panel #call-error"))
	msg := ba.text("#call-error")
	if !strings.HasPrefix(msg, "Voice needs an internet or LAN path") {
		t.Errorf("the call panel says %q: want the reason first, in words", msg)
	}
	for _, want := range []string{"the only path to bob now is a radio link", "bob will see a missed call"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the call panel says %q; want it to say %q", msg, want)
		}
	}
	if st := ba.text("#call-state"); st != "Call not possible" {
		t.Errorf("the call panel's state reads %q", st)
	}
	ba.do("see the attempt in the conversation", visible(`#messages li.call-rec[data-state="ended"] .note`))
	ba.screenshot("call-radio-only.png")
	waitFor(t, "bob's node records a missed call", func() bool {
		recs := b.calls()
		return len(recs) == 1 && recs[0].State == call.StateMissed && recs[0].Incoming
	})
	if recs := a.calls(); len(recs) != 1 || recs[0].State != call.StateEnded {
		t.Errorf("alice's call history: %+v", recs)
	}
}
