package main

import (
	"strings"
	"testing"

	"github.com/ternmesh/tern/api"
)

// TestInteractiveChat drives `tern chat bob` as a person would: type a
// line, see it go queued -> delivered, and see bob's answer appear.
func TestInteractiveChat(t *testing.T) {
	a, b := startDaemon(t, "alice"), startDaemon(t, "bob")
	a.addContact(b)
	b.addContact(a)
	a.addPeer(b)
	waitFor(t, "alice and bob are linked", func() bool { return a.hasRoute(b) })

	chat := a.interactive("chat", "bob")
	chat.expect("chatting with bob")
	chat.typeLine("is the bridge open?")
	chat.expect("[queued] is the bridge open?")
	chat.expect("[delivered, sent via LAN] is the bridge open?")
	waitFor(t, "bob has it", func() bool { return contains(incomingTexts(b.history("alice")), "is the bridge open?") })
	b.do("POST", "/v1/messages", api.Send{To: "alice", Text: "yes, until dusk"}, nil)
	if l := chat.expect("yes, until dusk"); !strings.Contains(l, "bob:") {
		t.Errorf("incoming line %q does not name bob", l)
	}
	chat.quit()
}

// TestIDPrintsCardAndQRCode: `tern id` shows what a person needs to share.
func TestIDPrintsCardAndQRCode(t *testing.T) {
	a := startDaemon(t, "alice")
	out, err := a.cli("id")
	if err != nil {
		t.Fatalf("tern id: %v\n%s", err, out)
	}
	for _, want := range []string{"address: " + a.addr, "tern:", "QR code", "█"} {
		if !strings.Contains(out, want) {
			t.Errorf("tern id output lacks %q", want)
		}
	}
}
