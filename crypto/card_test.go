package crypto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAddressStringParse(t *testing.T) {
	id, err := IdentityFromSeed(seedOf(1))
	if err != nil {
		t.Fatal(err)
	}
	a := id.Address()
	s := a.String()
	if len(s) != 32 || strings.ToLower(s) != s || a.Short() != s[:8] {
		t.Fatalf("String %q, Short %q", s, a.Short())
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		got, err := ParseAddress(in)
		if err != nil || got != a {
			t.Fatalf("ParseAddress(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", s[:31], s + "0", "zz" + s[2:], " " + s[1:]} {
		if _, err := ParseAddress(bad); err == nil {
			t.Fatalf("ParseAddress(%q) accepted", bad)
		}
	}
}

func TestIdentityDeterministic(t *testing.T) {
	a, _ := IdentityFromSeed(seedOf(7))
	b, _ := IdentityFromSeed(seedOf(7))
	c, _ := IdentityFromSeed(seedOf(8))
	if a.Address() != b.Address() || a.Address() == c.Address() {
		t.Fatal("addresses are not a function of the seed")
	}
	if !bytes.Equal(a.Seed(), seedOf(7)) {
		t.Fatal("Seed() does not return the seed")
	}
	g, err := GenerateIdentity(seededReader(3))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := IdentityFromSeed(g.Seed())
	if again.Address() != g.Address() {
		t.Fatal("an identity does not survive its seed")
	}
	if _, err := IdentityFromSeed(make([]byte, 31)); err == nil {
		t.Fatal("accepted a 31-byte seed")
	}
	p1, _ := a.PrekeyPublic(100)
	p2, _ := a.PrekeyPublic(101)
	if bytes.Equal(p1, p2) {
		t.Fatal("prekeys of two epochs are equal")
	}
	if got := PrekeyEpoch(time.Unix(7*24*3600*5+10, 0)); got != 5 {
		t.Fatalf("epoch = %d, want 5", got)
	}
}

func TestCardRoundTrip(t *testing.T) {
	alice, _, _ := pair(t)
	c := alice.card
	for _, via := range []func() (*Card, error){
		func() (*Card, error) { return ParseCard(c.Marshal(), testNow) },
		func() (*Card, error) { return ParseCardURI(c.URI(), testNow) },
		func() (*Card, error) { return ParseCardURI("  TERN:"+c.URI()[5:]+"\n", testNow) },
	} {
		got, err := via()
		if err != nil {
			t.Fatal(err)
		}
		if got.Address() != alice.addr() || got.Name != "alice" || len(got.Links) != 1 || !bytes.Equal(got.Marshal(), c.Marshal()) {
			t.Fatalf("card changed in a round trip: %+v", got)
		}
	}
	if !strings.HasPrefix(c.URI(), "tern:") || strings.ContainsAny(c.URI(), "=+/") {
		t.Fatalf("URI %q is not tern: + unpadded base64url", c.URI()[:20])
	}
	if n := len(c.Marshal()); n > MaxCardSize {
		t.Fatalf("card is %d bytes", n)
	}
}

func TestCardExpired(t *testing.T) {
	alice, _, _ := pair(t)
	_, err := ParseCard(alice.card.Marshal(), testNow.Add(31*24*time.Hour))
	if !errors.Is(err, ErrCardExpired) {
		t.Fatalf("expired card: %v, want ErrCardExpired", err)
	}
	for _, want := range []string{"expired on 2026-03-31", "ask alice for a fresh card"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("expiry error %q does not say %q", err, want)
		}
	}
	if _, err := ParseCard(alice.card.Marshal(), testNow.Add(-48*time.Hour)); !errors.Is(err, ErrCardInvalid) || !strings.Contains(err.Error(), "clock") {
		t.Fatalf("card from the future: %v, want a clock hint", err)
	}
}

func TestCardBadSignatureAndTampering(t *testing.T) {
	alice, bob, _ := pair(t)
	good := alice.card.Marshal()
	for _, mutate := range []func(c *Card){
		func(c *Card) { c.SigEd25519[3] ^= 1 },
		func(c *Card) { c.SigMLDSA[100] ^= 1 },
		func(c *Card) { c.Name = "mallory" },
		func(c *Card) { c.Prekey = bob.card.Prekey },
		func(c *Card) { c.Expires += 3600 },
		func(c *Card) { c.Links = []string{"quic://evil.example:1"} },
	} {
		c, err := ParseCard(good, testNow)
		if err != nil {
			t.Fatal(err)
		}
		mutate(c)
		if _, err := ParseCard(c.Marshal(), testNow); !errors.Is(err, ErrCardInvalid) {
			t.Fatalf("altered card: %v, want ErrCardInvalid", err)
		}
	}
	// Every single flipped byte is refused.
	for i := 0; i < len(good); i += 7 {
		bad := bytes.Clone(good)
		bad[i] ^= 0x20
		if _, err := ParseCard(bad, testNow); err == nil {
			t.Fatalf("card with byte %d flipped accepted", i)
		}
	}
	if _, err := ParseCard(append(bytes.Clone(good), 0), testNow); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if _, err := ParseCard(make([]byte, MaxCardSize+1), testNow); !errors.Is(err, ErrCardInvalid) {
		t.Fatalf("oversized card: %v", err)
	}
	if _, err := ParseCardURI("tern:!!!", testNow); !errors.Is(err, ErrCardInvalid) {
		t.Fatalf("bad base64: %v", err)
	}
	if _, err := ParseCardURI("http://x", testNow); !errors.Is(err, ErrCardInvalid) {
		t.Fatalf("wrong scheme: %v", err)
	}
}

func TestNewCardLimits(t *testing.T) {
	id, _ := IdentityFromSeed(seedOf(9))
	many := make([]string, MaxCardLinks+1)
	for i := range many {
		many[i] = "quic://a.example:1"
	}
	for name, tc := range map[string]struct {
		name  string
		links []string
		valid time.Duration
	}{
		"long name":     {strings.Repeat("n", MaxCardNameSize+1), nil, time.Hour},
		"bad utf8":      {"\xff", nil, time.Hour},
		"too many":      {"x", many, time.Hour},
		"long link":     {"x", []string{"quic://" + strings.Repeat("a", MaxCardLinkSize)}, time.Hour},
		"not a url":     {"x", []string{"just words"}, time.Hour},
		"zero validity": {"x", nil, 0},
	} {
		if _, err := id.NewCard(tc.name, tc.links, testNow, tc.valid); err == nil {
			t.Errorf("%s: NewCard accepted it", name)
		}
	}
	full := make([]string, MaxCardLinks)
	for i := range full {
		full[i] = "quic://" + strings.Repeat("h", MaxCardLinkSize-12) + ":1"
	}
	c, err := id.NewCard(strings.Repeat("é", MaxCardNameSize/2), full, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCard(c.Marshal(), testNow); err != nil {
		t.Fatalf("card at every limit: %v", err)
	}
}

func TestSAS(t *testing.T) {
	alice, bob, clk := pair(t)
	carol := newPeer(t, 0xC0, "carol", clk)
	ab, ba := SAS(alice.card, bob.card), SAS(bob.card, alice.card)
	if ab != ba {
		t.Fatalf("SAS not symmetric: %q vs %q", ab, ba)
	}
	groups := strings.Split(ab, " ")
	if len(groups) != 5 {
		t.Fatalf("SAS %q is not 5 groups", ab)
	}
	for _, g := range groups {
		if len(g) != 4 || strings.Trim(g, "0123456789") != "" {
			t.Fatalf("SAS %q has group %q", ab, g)
		}
	}
	if SAS(alice.card, carol.card) == ab || SAS(bob.card, carol.card) == ab {
		t.Fatal("SAS equal for different pairs")
	}
	// A fresh card of the same identity (new prekey, new links) keeps the SAS.
	later, _ := alice.id.NewCard("alice", nil, testNow.Add(2*EpochLength), time.Hour)
	if SAS(later, bob.card) != ab {
		t.Fatal("SAS changed with the prekey")
	}
}

func TestVerifyLinkProof(t *testing.T) {
	alice, bob, _ := pair(t)
	got, err := VerifyLinkProof(alice.id.PublicKey(), alice.card.Marshal(), testNow)
	if err != nil || got != alice.addr() {
		t.Fatalf("VerifyLinkProof = %v, %v", got, err)
	}
	if _, err := VerifyLinkProof(bob.id.PublicKey(), alice.card.Marshal(), testNow); !errors.Is(err, ErrCardInvalid) {
		t.Fatalf("proof with someone else's card: %v", err)
	}
	if _, err := VerifyLinkProof(alice.id.PublicKey(), alice.card.Marshal(), testNow.Add(365*24*time.Hour)); !errors.Is(err, ErrCardExpired) {
		t.Fatalf("expired proof: %v", err)
	}
}
