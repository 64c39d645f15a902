package main

import (
	"strings"
	"testing"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/lora/modememu"
	"github.com/ternmesh/tern/lora/radiosim"
)

// twoKB is a 2 KB message: more than a LoRa frame can carry, so it is
// fragmented and repaired by the radio link layer.
var twoKB = strings.Repeat("The river crossing at the old mill is flooded; use the footbridge. ", 31)[:2048]

// loraPair runs two daemons, each on its own emulated modem on one
// simulated channel, as separate processes, and checks that a 2 KB message
// and the session set-up (an X-Wing init of about 1.3 KB) cross both ways.
func loraPair(t *testing.T, urlA, urlB string) {
	a := startDaemon(t, "alice", "--listen", "off", "--link", urlA)
	b := startDaemon(t, "bob", "--listen", "off", "--link", urlB)
	a.addContact(b)
	b.addContact(a)
	defer func() {
		if t.Failed() {
			pa, _ := a.cli("peers")
			sa, _ := a.cli("status")
			t.Logf("alice peers:\n%s\nstatus:\n%s\nalice log:\n%s\nbob log:\n%s", pa, sa, a.logText(), b.logText())
		}
	}()
	waitFor(t, "alice hears bob over the radio", func() bool { return a.hasRoute(b) })
	a.do("POST", "/v1/messages", api.Send{To: "bob", Text: twoKB}, nil)
	waitFor(t, "bob receives the 2 KB message", func() bool { return contains(incomingTexts(b.history("alice")), twoKB) })
	b.do("POST", "/v1/messages", api.Send{To: "alice", Text: "got it, thanks"}, nil)
	waitFor(t, "alice receives the answer", func() bool { return contains(incomingTexts(a.history("bob")), "got it, thanks") })
	waitFor(t, "alice's message is recorded as sent via LoRa", func() bool {
		for _, r := range a.history("bob") {
			if !r.Incoming && r.Text == twoKB {
				return r.Path == "lora"
			}
		}
		return false
	})
	if out, err := b.cli("inbox"); err != nil || !strings.Contains(out, "(via LoRa)") {
		t.Errorf("tern inbox does not say the message came over LoRa: %v\n%s", err, out)
	}
	out, err := a.cli("peers")
	if err != nil || !strings.Contains(out, "airtime used") || !strings.Contains(out, "radio ") {
		t.Errorf("tern peers does not show the radio figures:\n%s", out)
	}
}

// rnodeLinks starts two emulated RNodes 100 m apart on one simulated
// channel (seeded) and returns the link URLs of each, at SF7 in the EU868
// 869.4-869.65 MHz sub-band (10 % duty cycle).
func rnodeLinks(t *testing.T, seed uint64) (a, b string) {
	t.Helper()
	air := modememu.NewAir(radiosim.Config{Seed: seed}, 20)
	t.Cleanup(air.Close)
	ea, err := modememu.NewRNode(air, modememu.RNodeConfig{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	eb, err := modememu.NewRNode(air, modememu.RNodeConfig{Name: "b", X: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ea.Unplug)
	t.Cleanup(eb.Unplug)
	const q = "?freq=869.525&bw=125&sf=7&cr=5&txp=14"
	return "rnode://" + ea.Path() + q, "rnode://" + eb.Path() + q
}

func TestTwoDaemonsOverRNodeModems(t *testing.T) {
	a, b := rnodeLinks(t, 1)
	loraPair(t, a, b)
}

func TestTwoDaemonsOverE22Modems(t *testing.T) {
	air := modememu.NewAir(radiosim.Config{Seed: 2}, 20)
	t.Cleanup(air.Close)
	ea, err := modememu.NewE22(air, modememu.E22Config{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	eb, err := modememu.NewE22(air, modememu.E22Config{Name: "b", X: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ea.Unplug)
	t.Cleanup(eb.Unplug)
	const q = "?freq=915.125&air=2.4k&rssi=0&region=US915" // a module without M0/M1 wiring keeps its factory settings: no RSSI byte
	loraPair(t, "e22://"+ea.Path()+q, "e22://"+eb.Path()+q)
}
