package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/router"
)

// TestWebUIChatMovesToRadioWhenQUICIsCut is issue 8's path acceptance: Alice
// (in a browser) and Bob reach each other over QUIC (through a UDP relay
// the test can cut) and over LoRa (emulated RNodes on one channel). With the
// conversation open, a message goes over the internet path; then the QUIC
// path is cut: the next messages, both ways, travel over LoRa and the page
// says so on each bubble; a call attempt explains why voice is unavailable;
// when QUIC comes back, messages take it again.
func TestWebUIChatMovesToRadioWhenQUICIsCut(t *testing.T) {
	chromiumPath(t)
	radioA, radioB := rnodeLinks(t, 5)
	a, linkA := startWebDaemon(t, "alice", "--link", radioA)
	b := startDaemon(t, "bob", "--link", radioB)
	defer func() {
		if t.Failed() {
			pa, _ := a.cli("peers")
			t.Logf("alice peers:\n%s\nalice log:\n%s\nbob log:\n%s", pa, a.logText(), b.logText())
		}
	}()
	b.addContact(a)
	ba := newBrowser(t, "alice's browser")
	ba.onboard(linkA, "Alice")
	ba.addContact(b.card(), "bob")
	proxy := startLossyProxy(t, strings.TrimPrefix(b.quic, "quic://"))
	a.do("POST", "/v1/peers", api.AddPeer{URL: "quic://" + proxy.addr() + "?id=" + b.addr}, nil)
	waitFor(t, "alice has a live route to bob", func() bool { return a.hasRoute(b) })

	ba.openChat("bob")
	sentOver := func(text, medium string) {
		t.Helper()
		ba.until(text+" delivered "+medium, bubbleJS("out", text, `/Delivered|Read/.test(li.querySelector('.status').textContent) && li.querySelector('.status').textContent.includes('via `+medium+`')`))
	}
	ba.send("first, over the internet")
	sentOver("first, over the internet", "LAN")

	proxy.setLoss(100)
	cut := time.Now()
	ba.send("second, after the cut")
	sentOver("second, after the cut", "LoRa")
	t.Logf("first message after the cut delivered over LoRa %v after the cut", time.Since(cut).Round(100*time.Millisecond))
	b.do("POST", "/v1/messages", api.Send{To: "alice", Text: "bob here, over the radio"}, nil)
	ba.until("bob's reply shown as come via LoRa", bubbleJS("in", "bob here, over the radio", `li.textContent.includes('via LoRa')`))

	if out, err := a.cli("peers"); err != nil || !strings.Contains(out, "no answer over quic://") {
		t.Errorf("tern peers does not say the QUIC link stopped answering: %v\n%s", err, out)
	}
	ba.do("see the network page say so", click("#nav-network"), visible("#links .silent"))
	// The radio neighbour is charted: signal, SNR and the airtime used
	// against the legal budget (EU868 869.4-869.65 MHz: 10 %, 360 s an hour).
	ba.do("see bob's radio charted", visible(`#radios .radio-card[data-neighbour="`+b.addr+`"] figure[data-series="airtime"] svg`),
		chromedp.Poll[chromedp.Void](`Number(document.querySelector('#radios figure[data-series="rssi"] svg').dataset.points) >= 1`))
	for sel, want := range map[string]string{
		`#radios figure[data-series="rssi"] figcaption`:    "dBm",
		`#radios figure[data-series="snr"] figcaption`:     "dB",
		`#radios figure[data-series="airtime"] figcaption`: "of 360 s allowed",
	} {
		// Read in one step: the charts are redrawn every 2 s.
		if got := ba.eval(`document.querySelector(` + jsString(sel) + `).textContent`); !strings.Contains(got, want) {
			t.Errorf("the radio chart says %q, want %q in it", got, want)
		}
	}
	ba.screenshot("radio-charts.png")
	ba.openChat("bob")
	ba.do("press Call", click("#chat-call"), visible("#call-panel #call-error"))
	if msg := ba.text("#call-error"); !strings.HasPrefix(msg, "Voice needs an internet or LAN path") {
		t.Errorf("with only the radio left, the call panel says %q", msg)
	}
	ba.do("close the call panel", click("#call-close"), visible("#composer-text"))

	proxy.setLoss(0)
	back := time.Now()
	waitFor(t, "alice's QUIC link to bob answers again", func() bool {
		var peers []router.PeerInfo
		a.do("GET", "/v1/peers", nil, &peers)
		for _, p := range peers {
			if strings.HasPrefix(p.URL, "quic://") && p.State == "up" && len(p.Silent) == 0 {
				return true
			}
		}
		return false
	})
	ba.send("third, internet back")
	sentOver("third, internet back", "LAN")
	t.Logf("QUIC carried messages again %v after it came back", time.Since(back).Round(100*time.Millisecond))
	ba.screenshot("path-change.png")
	want := []string{"first, over the internet", "second, after the cut", "third, internet back"}
	if got := incomingTexts(b.history("alice")); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("bob has from alice %q, want each message once, in order: %q", got, want)
	}
}
