package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/chat"
)

// TestThreeNodesRelayAndStoreAndForward is the foundation acceptance test:
// three daemons as separate processes on loopback, A-B-C with A and C not
// linked. A reaches C through B; with C stopped the message waits at B and
// arrives after C restarts; B never holds the plaintext nor A's address in
// the bundle.
func TestThreeNodesRelayAndStoreAndForward(t *testing.T) {
	a, b, c := startDaemon(t, "alice"), startDaemon(t, "bob"), startDaemon(t, "carol")
	a.addContact(c)
	c.addContact(a)
	a.addPeer(b)
	c.addPeer(b)
	waitFor(t, "A learns a route to C through B", func() bool { return a.hasRoute(c) })

	// 1. Multi-hop delivery with receipts: queued -> forwarded -> delivered.
	var sent chat.Record
	a.do("POST", "/v1/messages", api.Send{To: "carol", Text: "hello carol, through bob"}, &sent)
	if sent.State != chat.StateQueued {
		t.Errorf("a fresh message is %q, want queued", sent.State)
	}
	waitFor(t, "C shows the message", func() bool { return contains(incomingTexts(c.history("alice")), "hello carol, through bob") })
	waitFor(t, "A sees it delivered", func() bool {
		for _, r := range a.history("carol") {
			if r.ID == sent.ID {
				return r.State == chat.StateDelivered
			}
		}
		return false
	})
	for _, r := range a.history("carol") {
		if r.ID == sent.ID && r.Via != b.addr {
			t.Errorf("message went via %q, want bob %s", r.Via, b.addr)
		}
	}

	// 2. C goes away: the next message waits at B.
	c.stop()
	waitFor(t, "B notices C left", func() bool {
		for _, p := range b.status().Routes {
			if fmt.Sprintf("%x", p.Dest[:]) == c.addr && p.Live {
				return false
			}
		}
		return true
	})
	const secret = "the spare key is under the third flowerpot"
	a.do("POST", "/v1/messages", api.Send{To: "carol", Text: secret}, nil)
	var held []api.HeldBundle
	// B took custody; A keeps only a hedge (a spare copy it drops when
	// C's receipt comes back, or sends another way if none comes).
	waitFor(t, "the message waits at B", func() bool {
		b.do("GET", "/v1/bundles", nil, &held)
		return len(held) == 1 && a.status().Metrics.StoredNow <= 1
	})
	if held[0].Dest != c.addr {
		t.Errorf("B holds a bundle for %s, want carol %s", held[0].Dest, c.addr)
	}
	aAddr, _ := hex.DecodeString(a.addr)
	for _, needle := range [][]byte{aAddr, []byte(a.addr), []byte(secret)} {
		if bytes.Contains(held[0].Raw, needle) {
			t.Errorf("the bundle as B holds it contains %q", needle)
		}
	}
	db, err := os.ReadFile(filepath.Join(b.data, "tern.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte(secret)) || bytes.Contains(db, []byte("hello carol")) {
		t.Error("B's store file contains the plaintext")
	}

	// 3. C comes back (it dials B again from its saved links) and gets it.
	c.start()
	waitFor(t, "C receives what was sent while it was away", func() bool {
		return contains(incomingTexts(c.history("alice")), secret)
	})
	waitFor(t, "B released custody", func() bool { return b.status().Metrics.StoredNow == 0 })
	waitFor(t, "C's receipt clears A's hedge", func() bool { return a.status().Metrics.StoredNow == 0 })
}

// TestWrongPinRefused: a link URL pinned to another identity never connects,
// and the log says why.
func TestWrongPinRefused(t *testing.T) {
	a, b := startDaemon(t, "alice"), startDaemon(t, "bob")
	wrong := strings.Repeat("ab", 16)
	url := b.quic + "?id=" + wrong
	a.do("POST", "/v1/peers", api.AddPeer{URL: url}, nil)
	waitFor(t, "the wrong pin is reported", func() bool {
		out, _ := a.cli("peers")
		return strings.Contains(out, "expected") && strings.Contains(a.logText(), wrong)
	})
	if a.hasRoute(b) {
		t.Error("A routes to B through a link whose pin failed")
	}
	// The right pin connects.
	a.do("POST", "/v1/peers", api.AddPeer{URL: b.quic + "?id=" + b.addr}, nil)
	waitFor(t, "the right pin connects", func() bool { return a.hasRoute(b) })
}
