package chat

import (
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/store"
)

// confirmedPair returns two boxes with an established, confirmed session:
// a sealed to b, b opened and answered, a opened the answer.
func confirmedPair(tb testing.TB) (a, b *crypto.Box, ida, idb *crypto.Identity, cardB *crypto.Card) {
	tb.Helper()
	now := time.Now()
	ida, _ = crypto.GenerateIdentity(rand.Reader)
	idb, _ = crypto.GenerateIdentity(rand.Reader)
	cardB, err := idb.NewCard("b", nil, now, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	open := func(name string) *store.Store {
		st, err := store.Open(filepath.Join(tb.TempDir(), name), store.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		return st
	}
	a, _ = crypto.NewBox(ida, open("a.db").Bucket("sessions"), rand.Reader, time.Now)
	b, _ = crypto.NewBox(idb, open("b.db").Bucket("sessions"), rand.Reader, time.Now)
	s, err := a.Seal(idb.Address(), cardB, []byte("hi"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := b.Open(s); err != nil {
		tb.Fatal(err)
	}
	r, _ := b.Seal(ida.Address(), nil, []byte("hi back"))
	if _, err := a.Open(r); err != nil {
		tb.Fatal(err)
	}
	return a, b, ida, idb, cardB
}

// BenchmarkTextOverhead reports the bytes a 40-byte text costs beyond the
// text itself, end to end encrypted to a contact with a session, as the
// internet encoding carries it (bundle header + sealing + message framing).
// The LoRa budget (40 bytes) applies to the compact radio encoding.
func BenchmarkTextOverhead(b *testing.B) {
	a, _, _, idb, _ := confirmedPair(b)
	text := "meet at the north gate at 18:00, bring w" // 40 bytes
	if len(text) != 40 {
		b.Fatalf("text is %d bytes", len(text))
	}
	var total int
	for range b.N {
		pt, _ := (&message.Message{Type: message.Text, Text: text}).Marshal() // as Send builds it
		sealed, err := a.Seal(idb.Address(), nil, pt)
		if err != nil {
			b.Fatal(err)
		}
		dest := bundle.Addr(idb.Address())
		bb := bundle.Bundle{Version: bundle.Version, Kind: bundle.KindData, Flags: bundle.FlagDerivedID, Dest: dest, ID: bundle.DerivedID(dest, sealed),
			Created: time.Now().UnixMilli(), Lifetime: uint64(DefaultLifetime / time.Millisecond), HopLimit: DefaultHopLimit, Payload: sealed}
		raw, err := bb.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		total = len(raw)
	}
	b.ReportMetric(float64(total-len(text)), "overhead-bytes")
}
