package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/cloudflare/circl/kem/xwing"
)

// cardCompactSigDomain prefixes the bytes the compact card's Ed25519
// signature covers. It differs from cardSigDomain, and the signed body
// differs too (version 2, a 32-byte hash in place of the key), so a full
// card's signature never verifies as a compact one, nor the reverse.
const cardCompactSigDomain = "tern/v1/card-compact\x00"

// compactBody is the signed part of a compact card, a CBOR array.
type compactBody struct {
	_           struct{} `cbor:",toarray"`
	Version     uint
	Name        string
	Ed25519     []byte
	MLDSAHash   []byte
	PrekeyEpoch uint32
	Prekey      []byte
	Links       []string
	Issued      int64
	Expires     int64
}

// compactWire is the encoded compact card: the body's fields then the
// Ed25519 signature.
type compactWire struct {
	_           struct{} `cbor:",toarray"`
	Version     uint
	Name        string
	Ed25519     []byte
	MLDSAHash   []byte
	PrekeyEpoch uint32
	Prekey      []byte
	Links       []string
	Issued      int64
	Expires     int64
	SigCompact  []byte
}

// Compact reports whether c is a compact card: it names its ML-DSA-44 key by
// hash only (MLDSA is nil) and carries only an Ed25519 signature.
func (c *Card) Compact() bool { return len(c.MLDSA) == 0 }

// MLDSAHash returns SHA-256 of the card's ML-DSA-44 public key, for either
// form. With the Ed25519 key it determines the address (DeriveAddress).
func (c *Card) MLDSAHash() [32]byte {
	if c.Compact() {
		return c.mldsaHash
	}
	return sha256.Sum256(c.MLDSA)
}

// compactSignedBytes returns the bytes the compact signature covers.
func (c *Card) compactSignedBytes() ([]byte, error) {
	h := c.MLDSAHash()
	body, err := modes.enc.Marshal(compactBody{
		Version: cardVersionCompact, Name: c.Name, Ed25519: c.Ed25519, MLDSAHash: h[:],
		PrekeyEpoch: c.PrekeyEpoch, Prekey: c.Prekey, Links: c.Links,
		Issued: c.Issued, Expires: c.Expires,
	})
	if err != nil {
		return nil, fmt.Errorf("encode compact card body: %w", err)
	}
	return append([]byte(cardCompactSigDomain), body...), nil
}

// MarshalCompact returns the canonical CBOR encoding of the compact form, or
// nil when c has no compact signature (a full card parsed from its encoding:
// only the card's owner, through NewCard, can make one).
func (c *Card) MarshalCompact() []byte {
	if len(c.SigCompact) == 0 {
		return nil
	}
	h := c.MLDSAHash()
	b, err := modes.enc.Marshal(compactWire{
		Version: cardVersionCompact, Name: c.Name, Ed25519: c.Ed25519, MLDSAHash: h[:],
		PrekeyEpoch: c.PrekeyEpoch, Prekey: c.Prekey, Links: c.Links,
		Issued: c.Issued, Expires: c.Expires, SigCompact: c.SigCompact,
	})
	if err != nil {
		return nil
	}
	return b
}

// CompactURI returns "tern:" followed by the unpadded base64url of
// MarshalCompact(): about 1.9 K characters for a card with a short name and
// one link, small enough for a QR code (the limit is 2953 bytes at version
// 40-L; each link adds its length times 4/3). It returns "" when c has no
// compact signature (see MarshalCompact). ParseCardURI reads it.
func (c *Card) CompactURI() string {
	b := c.MarshalCompact()
	if b == nil {
		return ""
	}
	return CardURIScheme + base64.RawURLEncoding.EncodeToString(b)
}

// parseCompactCard decodes and verifies a compact card (no time check).
func parseCompactCard(b []byte) (*Card, error) {
	var w compactWire
	if err := modes.dec.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: bad CBOR for a compact card: %v", ErrCardInvalid, err)
	}
	if err := checkSizes([]fieldSize{
		{"Ed25519 key", len(w.Ed25519), ed25519.PublicKeySize},
		{"ML-DSA-44 key hash", len(w.MLDSAHash), sha256.Size},
		{"X-Wing prekey", len(w.Prekey), xwing.PublicKeySize},
		{"Ed25519 signature", len(w.SigCompact), ed25519.SignatureSize},
	}); err != nil {
		return nil, err
	}
	if err := checkNameLinks(w.Name, w.Links); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCardInvalid, err)
	}
	c := &Card{
		Name: w.Name, Ed25519: w.Ed25519, PrekeyEpoch: w.PrekeyEpoch,
		Prekey: w.Prekey, Links: w.Links, Issued: w.Issued, Expires: w.Expires,
		SigCompact: w.SigCompact,
	}
	copy(c.mldsaHash[:], w.MLDSAHash)
	if c.Links == nil {
		c.Links = []string{}
	}
	if !bytes.Equal(c.Marshal(), b) {
		return nil, fmt.Errorf("%w: not in canonical CBOR encoding", ErrCardInvalid)
	}
	msg, err := c.compactSignedBytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCardInvalid, err)
	}
	if !ed25519.Verify(c.Ed25519, msg, c.SigCompact) {
		return nil, fmt.Errorf("%w: bad Ed25519 signature on the compact card (the card was altered or damaged)", ErrCardInvalid)
	}
	return c, nil
}
