package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/store"
	"github.com/ternmesh/tern/transports/quiclink"
)

// TestForgedReplayedAndMalformedRejected plays a hostile neighbour over a
// real QUIC link: a genuine sealed message is delivered once; the same
// sealed payload in a new bundle (a replay), a tampered one (a forgery) and
// bytes that are not a bundle at all are rejected, counted by reason, and
// the daemon keeps working.
func TestForgedReplayedAndMalformedRejected(t *testing.T) {
	c := startDaemon(t, "carol")
	var id api.ID
	c.do("GET", "/v1/id", nil, &id)
	card, err := crypto.ParseCardURI(id.URI, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	me, _ := crypto.GenerateIdentity(rand.Reader)
	myCard, _ := me.NewCard("mallory", nil, time.Now(), time.Hour)
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	box, _ := crypto.NewBox(me, st.Bucket("sessions"), rand.Reader, time.Now)
	qt, err := quiclink.New(quiclink.Config{
		Key: me.SigningKey(), Proof: myCard.Marshal(), Logger: slog.New(slog.DiscardHandler),
		Verify: func(pub ed25519.PublicKey, proof []byte) ([16]byte, error) {
			return crypto.VerifyLinkProof(pub, proof, time.Now())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer qt.Close()
	u, _ := url.Parse(c.quic + "?id=" + c.addr)
	link, err := qt.Dial(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	go func() { // drain custody acks and announces
		for {
			if _, err := link.Recv(context.Background()); err != nil {
				return
			}
		}
	}()

	var mid [16]byte
	rand.Read(mid[:])
	pt, _ := (&message.Message{Type: message.Text, ID: mid, Text: "genuine"}).Marshal()
	sealed, err := box.Seal(card.Address(), card, pt)
	if err != nil {
		t.Fatal(err)
	}
	send := func(payload []byte) {
		t.Helper()
		bid, _ := bundle.NewID(rand.Reader)
		b := bundle.Bundle{Version: bundle.Version, Kind: bundle.KindData, Dest: bundle.Addr(card.Address()), ID: bid,
			Lifetime: 60_000, HopLimit: 4, Payload: payload}
		raw, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := link.Send(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
	}
	send(sealed)
	waitFor(t, "carol shows the genuine message", func() bool {
		return contains(incomingTexts(c.history("")), "genuine")
	})
	send(sealed) // replay in a fresh bundle
	// A forgery: a fresh message (its counter unused) with a flipped bit. A
	// tampered copy of an already opened message counts as a replay: its
	// key is gone, so only its counter can be checked.
	pt2, _ := (&message.Message{Type: message.Text, ID: [16]byte{1}, Text: "never shown"}).Marshal()
	tampered, err := box.Seal(card.Address(), card, pt2)
	if err != nil {
		t.Fatal(err)
	}
	tampered[len(tampered)-3] ^= 0x40
	send(tampered)
	link.Send(context.Background(), []byte{0xa1, 0x01}) // CBOR, but not a bundle
	link.Send(context.Background(), []byte("\xff\xff not cbor"))

	waitFor(t, "carol counts each rejection by reason", func() bool {
		r := c.status().Metrics.Rejected
		return r["replayed"] == 1 && r["forged"] == 1 && r["malformed"] == 2
	})
	if n := len(incomingTexts(c.history(""))); n != 1 {
		t.Errorf("carol shows %d messages, want exactly 1", n)
	}
	if _, err := c.cli("status"); err != nil {
		t.Errorf("carol stopped answering: %v", err)
	}
}

// TestKillRelayMidStream: kill -9 of the relay while 1,000 messages flow
// A -> B -> C. After B restarts every message reaches C, none twice.
func TestKillRelayMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the kill -9 test sends 1,000 messages through three processes")
	}
	a, b, c := startDaemon(t, "alice"), startDaemon(t, "bob"), startDaemon(t, "carol")
	a.addContact(c)
	a.addPeer(b)
	c.addPeer(b)
	waitFor(t, "A learns a route to C", func() bool { return a.hasRoute(c) })

	const total = 1000
	var sent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, total)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += 8 {
				err := a.c.Do(context.Background(), "POST", "/v1/messages", api.Send{To: "carol", Text: fmt.Sprintf("message %04d", i)}, nil)
				if err != nil {
					errs <- err
					return
				}
				sent.Add(1)
			}
		}()
	}
	waitFor(t, "traffic is flowing through B", func() bool { return c.status().Metrics.Total.Delivered >= 50 })
	b.kill()
	killedAt := c.status().Metrics.Total.Delivered
	b.start()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("sending: %v", err)
	}
	defer func() {
		if t.Failed() {
			c.cmd.Process.Signal(syscall.SIGQUIT)
			<-c.done
			c.cmd = nil
			os.WriteFile("/tmp/c.log", []byte(c.logText()), 0o644)
		}
	}()
	waitFor(t, "every message reaches C", func() bool {
		if testing.Verbose() {
			t.Logf("A %+v B %+v C %+v", a.status().Metrics, b.status().Metrics, c.status().Metrics)
		}
		return c.status().Metrics.Total.Delivered >= total
	})
	texts := incomingTexts(c.history(""))
	seen := map[string]bool{}
	for _, s := range texts {
		if seen[s] {
			t.Errorf("C shows %q twice", s)
		}
		seen[s] = true
	}
	if len(seen) != total {
		t.Errorf("C shows %d distinct messages, want %d", len(seen), total)
	}
	if d := c.status().Metrics.Total.Delivered; d != total {
		t.Errorf("C delivered %d bundles to the app, want exactly %d (a duplicate got through dedupe)", d, total)
	}
	t.Logf("B was killed after %d of %d messages had reached C", killedAt, total)
	_ = chat.StateDelivered
}
