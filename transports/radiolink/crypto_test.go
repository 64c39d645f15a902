package radiolink

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/store"
)

func newBox(tb testing.TB, id *crypto.Identity, name string) *crypto.Box {
	st, err := store.Open(filepath.Join(tb.TempDir(), name), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	b, err := crypto.NewBox(id, st.Bucket("sessions"), rand.Reader, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func dataBundle(tb testing.TB, dest bundle.Addr, payload []byte) []byte {
	b := bundle.Bundle{Version: bundle.Version, Kind: bundle.KindData, Flags: bundle.FlagDerivedID, Dest: dest,
		ID: bundle.DerivedID(dest, payload), Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli(),
		Lifetime: uint64(5 * 24 * time.Hour / time.Millisecond), HopLimit: 32, Payload: payload} // as package chat sends it
	raw, err := b.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// TestSessionOverRadio sets up a post-quantum session from scratch over a
// simulated SF9 channel (the first bundle carries the X-Wing init), then
// sends a 2 KB message, at 0, 10 and 30 % frame loss. The test plays the
// router: it builds bundles, opens them on arrival and answers.
func TestSessionOverRadio(t *testing.T) {
	ideal := map[string]time.Duration{}
	for _, loss := range []float64{0, 0.1, 0.3} {
		t.Run(fmt.Sprintf("loss%.0f", loss*100), func(t *testing.T) {
			ida, _ := crypto.GenerateIdentity(rand.Reader)
			idb, _ := crypto.GenerateIdentity(rand.Reader)
			cardB, err := idb.NewCard("b", nil, time.Now(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			boxA, boxB := newBox(t, ida, "a.db"), newBox(t, idb, "b.db")
			s := newSimNet(t, uint64(loss*100)+3, 2, sf9, func(i int, c *Config) {
				c.Self = [2]bundle.Addr{bundle.Addr(ida.Address()), bundle.Addr(idb.Address())}[i]
			})
			s.setLoss(loss)
			s.meet(t, 10*time.Minute)
			a, b := s.nodes[0], s.nodes[1]
			start := s.airtime()
			roundTrip := func(from, to *simNode, box, openBox *crypto.Box, dest crypto.Address, card *crypto.Card, text string) {
				t.Helper()
				pt, _ := (&message.Message{Type: message.Text, Text: text}).Marshal()
				sealed, err := box.Seal(dest, card, pt)
				if err != nil {
					t.Fatal(err)
				}
				raw := dataBundle(t, bundle.Addr(dest), sealed)
				got := sendAndWait(t, s, from, to, raw, 10*time.Minute)
				if got == nil {
					t.Fatalf("bundle of %d bytes not delivered at %.0f%% loss", len(raw), loss*100)
				}
				if !bytes.Equal(got, raw) {
					t.Fatalf("bundle of %d bytes arrived changed (%d bytes)", len(raw), len(got))
				}
				bb, err := bundle.Unmarshal(got)
				if err != nil {
					t.Fatal(err)
				}
				op, err := openBox.Open(bb.Payload)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				m, err := message.Unmarshal(op.Plaintext)
				if err != nil || m.Text != text {
					t.Fatalf("message %q, err %v", m.Text, err)
				}
			}
			// 1. a -> b: session init (about 1.3 KB) with a first text.
			roundTrip(a, b, boxA, boxB, idb.Address(), cardB, "hello over LoRa")
			// 2. b -> a: the reply confirms the session.
			roundTrip(b, a, boxB, boxA, ida.Address(), nil, "confirmed")
			// 3. a -> b: a 2 KB message on the confirmed session.
			roundTrip(a, b, boxA, boxB, idb.Address(), nil, string(bytes.Repeat([]byte("x"), 2000)))
			s.clock.Advance(30 * time.Second) // let the last acks go
			used := s.airtime() - start
			ideal[fmt.Sprint(loss)] = used
			st := a.links[b.addr].RadioStats()
			t.Logf("airtime %v, retransmissions %d, fragments lost %d repaired %d", used, st.Peer.Retransmissions, st.Peer.FragmentsLost, st.Peer.FragmentsRepaired)
			if loss == 0.1 {
				if id := ideal["0"]; used > 2*id {
					t.Fatalf("airtime at 10%% loss %v is above twice the lossless %v", used, id)
				}
			}
		})
	}
}

// BenchmarkTextOverhead reports the bytes on air, beyond a 40-byte text,
// of a text end-to-end encrypted on a confirmed session, in the compact
// radio encoding, link header included, and its time on air.
func BenchmarkTextOverhead(b *testing.B) {
	ida, _ := crypto.GenerateIdentity(rand.Reader)
	idb, _ := crypto.GenerateIdentity(rand.Reader)
	cardB, _ := idb.NewCard("b", nil, time.Now(), time.Hour)
	boxA, boxB := newBox(b, ida, "a.db"), newBox(b, idb, "b.db")
	s1, _ := boxA.Seal(idb.Address(), cardB, []byte("hi"))
	if _, err := boxB.Open(s1); err != nil {
		b.Fatal(err)
	}
	r1, _ := boxB.Seal(ida.Address(), nil, []byte("hi back"))
	if _, err := boxA.Open(r1); err != nil {
		b.Fatal(err)
	}
	text := "meet at the north gate at 18:00, bring w"
	e, err := NewEngine(Config{Self: bundle.Addr(ida.Address()), MaxFrame: 255})
	if err != nil {
		b.Fatal(err)
	}
	nb := e.neighbour(bundle.Addr(idb.Address()))
	// A relay between a and b: the bundle's destination is not the next hop
	// and costs a destination prefix.
	relay := e.neighbour(bundle.Addr{0x5e, 0x1a})
	e.book.add(bundle.Addr(idb.Address()), false)
	var frameLen, relayedLen int
	for range b.N {
		pt, _ := (&message.Message{Type: message.Text, Text: text}).Marshal()
		sealed, err := boxA.Seal(idb.Address(), nil, pt)
		if err != nil {
			b.Fatal(err)
		}
		raw := dataBundle(b, bundle.Addr(idb.Address()), sealed)
		body, _, ok := compactBundle(raw, nb.addr, e.book, false)
		if !ok {
			b.Fatal("text bundle did not fit the compact rules")
		}
		frameLen = len(encodeSingle(ftCompact, e.linkCode(nb), e.cfg.Self, nb.addr, body))
		rbody, _, ok := compactBundle(raw, relay.addr, e.book, false)
		if !ok {
			b.Fatal("relayed text bundle did not fit the compact rules")
		}
		relayedLen = len(encodeSingle(ftCompact, e.linkCode(relay), e.cfg.Self, relay.addr, rbody))
	}
	b.ReportMetric(float64(frameLen-len(text)), "overhead-bytes")
	b.ReportMetric(float64(relayedLen-len(text)), "overhead-bytes-relayed")
	for _, sf := range []int{7, 9, 11} {
		p := airtime.Params{SF: sf, BandwidthHz: 125000, CR: 1, CRC: true}
		b.ReportMetric(float64(p.TimeOnAir(frameLen).Microseconds())/1000, fmt.Sprintf("ms-on-air-SF%d", sf))
	}
	if frameLen-len(text) > 40 || relayedLen-len(text) > 40 {
		b.Fatalf("overhead %d bytes (relayed %d), budget 40", frameLen-len(text), relayedLen-len(text))
	}
}
