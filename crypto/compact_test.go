package crypto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// maxCompactURI is the size a compact card URI must stay under to make a
// comfortable QR code (binary capacity at version 40-L is 2953 bytes).
const maxCompactURI = 2000

func TestCompactCardRoundTrip(t *testing.T) {
	alice, bob, _ := pair(t)
	full := alice.card
	uri := full.CompactURI()
	t.Logf("compact URI: %d characters (%d bytes of CBOR); full URI: %d characters", len(uri), len(full.MarshalCompact()), len(full.URI()))
	if len(uri) > maxCompactURI {
		t.Fatalf("compact URI is %d characters, want at most %d for a QR code", len(uri), maxCompactURI)
	}
	if !strings.HasPrefix(uri, "tern:") || strings.ContainsAny(uri, "=+/") {
		t.Fatalf("compact URI %q is not tern: + unpadded base64url", uri[:20])
	}
	for _, via := range []func() (*Card, error){
		func() (*Card, error) { return ParseCardURI(uri, testNow) },
		func() (*Card, error) { return ParseCard(full.MarshalCompact(), testNow) },
	} {
		c, err := via()
		if err != nil {
			t.Fatal(err)
		}
		if !c.Compact() || c.MLDSA != nil || c.SigMLDSA != nil || c.SigEd25519 != nil {
			t.Fatalf("parsed compact card is not compact: %+v", c)
		}
		if c.Address() != alice.addr() || c.Address() != full.Address() || c.MLDSAHash() != alice.id.MLDSAHash() {
			t.Fatalf("compact card address %s, full card %s", c.Address(), full.Address())
		}
		if c.Name != "alice" || !bytes.Equal(c.Prekey, full.Prekey) || c.PrekeyEpoch != full.PrekeyEpoch ||
			len(c.Links) != 1 || c.Links[0] != full.Links[0] || c.Issued != full.Issued || c.Expires != full.Expires {
			t.Fatalf("compact card lost a field: %+v", c)
		}
		if c.URI() != uri || c.CompactURI() != uri || !bytes.Equal(c.Marshal(), full.MarshalCompact()) {
			t.Fatal("a parsed compact card does not re-encode to its input")
		}
		if SAS(c, bob.card) != SAS(full, bob.card) {
			t.Fatal("the SAS of a compact card differs from the full card's")
		}
	}
	// A full card keeps its full encoding; parsed from it, it has no compact
	// signature to show.
	parsed, err := ParseCard(full.Marshal(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if full.Compact() || parsed.Compact() || parsed.CompactURI() != "" {
		t.Fatal("full card reported as compact, or a parsed full card invented a compact signature")
	}
}

func TestCompactCardURIFitsQRWithTypicalLinks(t *testing.T) {
	id, _ := IdentityFromSeed(seedOf(0x33))
	c, err := id.NewCard("Relay on the water tower", []string{"quic://relay-42.example.org:4242", "lora://eu868/869.525"}, testNow, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n := len(c.CompactURI())
	t.Logf("compact URI with a 24-byte name and two links: %d characters", n)
	if n > maxCompactURI {
		t.Fatalf("compact URI of a card with a 24-byte name and two links is %d characters, want at most %d", n, maxCompactURI)
	}
}

func TestCompactCardStartsSession(t *testing.T) {
	alice, bob, _ := pair(t)
	compact, err := ParseCardURI(bob.card.CompactURI(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := alice.box.Seal(compact.Address(), compact, []byte("scanned your QR"))
	if err != nil {
		t.Fatalf("seal with a compact card: %v", err)
	}
	mustOpen(t, bob, sealed, alice, "scanned your QR")
	mustOpen(t, alice, mustSeal(t, bob, alice, "welcome"), bob, "welcome")
	mustOpen(t, bob, mustSeal(t, alice, bob, "short form now"), alice, "short form now")
	if err := alice.box.Rekey(bob.addr(), compact); err != nil {
		t.Fatalf("rekey with a compact card: %v", err)
	}
}

func TestCompactCardTampered(t *testing.T) {
	alice, bob, _ := pair(t)
	good := alice.card.MarshalCompact()
	for name, mutate := range map[string]func(c *Card){
		"signature":   func(c *Card) { c.SigCompact[5] ^= 1 },
		"key hash":    func(c *Card) { c.mldsaHash[0] ^= 1 },
		"name":        func(c *Card) { c.Name = "mallory" },
		"prekey":      func(c *Card) { c.Prekey = bob.card.Prekey },
		"expiry":      func(c *Card) { c.Expires += 3600 },
		"links":       func(c *Card) { c.Links = []string{"quic://evil.example:1"} },
		"ed25519 key": func(c *Card) { c.Ed25519 = bob.id.PublicKey() },
	} {
		c, err := ParseCard(good, testNow)
		if err != nil {
			t.Fatal(err)
		}
		mutate(c)
		if _, err := ParseCard(c.Marshal(), testNow); !errors.Is(err, ErrCardInvalid) {
			t.Fatalf("compact card with %s altered: %v, want ErrCardInvalid", name, err)
		}
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x20
		if _, err := ParseCard(bad, testNow); err == nil {
			t.Fatalf("compact card with byte %d flipped accepted", i)
		}
	}
	if _, err := ParseCard(good[:len(good)-1], testNow); !errors.Is(err, ErrCardInvalid) {
		t.Fatalf("truncated compact card: %v", err)
	}
}

// TestCardSignaturesNotInterchangeable checks domain separation: neither
// form's Ed25519 signature verifies as the other's.
func TestCardSignaturesNotInterchangeable(t *testing.T) {
	alice, _, _ := pair(t)
	compact, err := ParseCard(alice.card.MarshalCompact(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	compact.SigCompact = bytes.Clone(alice.card.SigEd25519)
	if _, err := ParseCard(compact.Marshal(), testNow); !errors.Is(err, ErrCardInvalid) || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("compact card carrying the full card's Ed25519 signature: %v, want a bad signature", err)
	}
	full, err := ParseCard(alice.card.Marshal(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	full.SigEd25519 = bytes.Clone(alice.card.SigCompact)
	if _, err := ParseCard(full.Marshal(), testNow); !errors.Is(err, ErrCardInvalid) {
		t.Fatalf("full card carrying the compact signature: %v, want ErrCardInvalid", err)
	}
}

func TestCompactCardIsNoLinkProof(t *testing.T) {
	alice, _, _ := pair(t)
	_, err := VerifyLinkProof(alice.id.PublicKey(), alice.card.MarshalCompact(), testNow)
	if !errors.Is(err, ErrCardInvalid) || !strings.Contains(err.Error(), "full card") {
		t.Fatalf("compact card as a link proof: %v, want ErrCardInvalid asking for the full card", err)
	}
}

func TestCardUnknownVersion(t *testing.T) {
	alice, _, _ := pair(t)
	b := alice.card.MarshalCompact()
	b[1] = 0x03 // element 0: version 3
	_, err := ParseCard(b, testNow)
	if !errors.Is(err, ErrCardInvalid) || !strings.Contains(err.Error(), "upgrade tern") {
		t.Fatalf("card of version 3: %v, want ErrCardInvalid asking for an upgrade", err)
	}
}
