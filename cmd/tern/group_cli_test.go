package main

import (
	"strings"
	"testing"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/chat"
)

func (d *daemon) mustCLI(args ...string) string {
	d.t.Helper()
	out, err := d.cli(args...)
	if err != nil {
		d.t.Fatalf("%s: tern %s: %v\n%s", d.name, strings.Join(args, " "), err, out)
	}
	return out
}

// TestGroupCLI: three daemons over QUIC on loopback. Alice creates a
// group with `tern group create`, bob and carol see it with `tern groups`;
// alice chats in it with `tern chat Trip` and sees delivery, read receipts
// and the path; `tern group rm` takes carol out, and carol sees she was
// removed and gets nothing written after.
func TestGroupCLI(t *testing.T) {
	a, b, c := startDaemon(t, "alice"), startDaemon(t, "bob"), startDaemon(t, "carol")
	a.addContact(b)
	a.addContact(c)
	a.addPeer(b)
	a.addPeer(c)
	waitFor(t, "alice is linked to bob and carol", func() bool { return a.hasRoute(b) && a.hasRoute(c) })

	if out := a.mustCLI("group", "create", "Trip", "bob", "carol"); !strings.Contains(out, `created "Trip"`) || !strings.Contains(out, "3 members") {
		t.Fatalf("tern group create: %s", out)
	}
	for _, d := range []*daemon{b, c} {
		waitFor(t, d.name+" is in the group", func() bool {
			out, _ := d.cli("groups")
			return strings.Contains(out, "Trip") && strings.Contains(out, "alice") && strings.Contains(out, "member")
		})
	}
	if out := b.mustCLI("group", "show", "Trip"); !strings.Contains(out, "carol") || !strings.Contains(out, "owner") {
		t.Errorf("tern group show on bob: %s", out)
	}

	chatOut := a.interactive("chat", "Trip")
	chatOut.expect("chatting with Trip")
	chatOut.typeLine("meet at the bridge")
	chatOut.expect("[queued", "meet at the bridge")
	chatOut.expect("[delivered", "delivered to 2 of 2", "sent via LAN", "meet at the bridge")

	// Carol reads it with `tern chat` (which sends the read receipt); bob
	// through the API.
	carolChat := c.interactive("chat", "Trip")
	carolChat.expect("[Trip] alice: meet at the bridge", "(via LAN)")
	var hist []chat.Record
	b.do("GET", "/v1/messages?peer=Trip", nil, &hist)
	var ids []string
	for _, r := range hist {
		if r.Incoming && r.Kind == "" {
			ids = append(ids, r.ID)
		}
	}
	var marked api.Marked
	b.do("POST", "/v1/messages/read", api.MarkRead{Peer: "Trip", IDs: ids}, &marked)
	if marked.Marked != 1 {
		t.Errorf("bob marked %d read, want 1", marked.Marked)
	}
	chatOut.expect("[read", "meet at the bridge")
	carolChat.quit()

	// Bob writes through `tern send` to the group by name.
	if out := b.mustCLI("send", "Trip", "on my way"); !strings.Contains(out, "group Trip") {
		t.Errorf("tern send to a group: %s", out)
	}
	chatOut.expect("[Trip] bob: on my way")

	if out := a.mustCLI("group", "rm", "Trip", "carol"); !strings.Contains(out, "cannot read") {
		t.Errorf("tern group rm: %s", out)
	}
	waitFor(t, "carol sees she was removed", func() bool {
		out, _ := c.cli("groups")
		return strings.Contains(out, "you were removed")
	})
	waitFor(t, "bob is told", func() bool {
		out, _ := b.cli("inbox")
		return strings.Contains(out, "-- alice removed carol")
	})
	chatOut.typeLine("carol is out now")
	chatOut.expect("[delivered", "carol is out now")
	waitFor(t, "bob has the text after the removal", func() bool {
		out, _ := b.cli("inbox", "--peer", "Trip")
		return strings.Contains(out, "alice: carol is out now")
	})
	out := c.mustCLI("inbox")
	if strings.Contains(out, "carol is out now") || !strings.Contains(out, "removed you from the group") {
		t.Errorf("carol's inbox after her removal:\n%s", out)
	}
	if out, err := c.cli("group", "send", "Trip", "hello?"); err == nil || !strings.Contains(out, "removed you") {
		t.Errorf("carol writes to the group she was removed from: %v %s", err, out)
	}
	if out, err := b.cli("group", "rm", "Trip", "alice"); err == nil || !strings.Contains(out, "only the owner") {
		t.Errorf("bob removes the owner: %v %s", err, out)
	}
	chatOut.quit()
}
