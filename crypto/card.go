package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudflare/circl/kem/xwing"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/fxamacker/cbor/v2"
)

// Card limits enforced by NewCard and ParseCard.
const (
	MaxCardSize     = 16 << 10 // bytes of an encoded card
	MaxCardLinks    = 16       // links per card
	MaxCardLinkSize = 256      // bytes per link
	MaxCardNameSize = 64       // bytes of UTF-8 in the name

	// cardVersion is element 0 of a full card; cardVersionCompact of a
	// compact one (FORMAT.md). Element 0 names form and version together.
	cardVersion        = 1
	cardVersionCompact = 2
	// cardClockSkew is how far in the future a card's issue time may lie.
	cardClockSkew = 24 * time.Hour
	// cardSigDomain prefixes the bytes both card signatures cover.
	cardSigDomain = "tern/v1/card\x00"
	// CardURIScheme starts a card URI.
	CardURIScheme = "tern:"
)

var (
	// ErrCardInvalid is wrapped by every ParseCard error except expiry: the
	// card is malformed, over a limit or badly signed.
	ErrCardInvalid = errors.New("invalid contact card")
	// ErrCardExpired is wrapped when a card's validity has ended.
	ErrCardExpired = errors.New("contact card expired")
)

// Card is the signed public half of an identity that people exchange. The
// fields are those of the wire format (see FORMAT.md); a Card returned by
// ParseCard or Identity.NewCard has valid signatures.
//
// A card comes in two forms. A full card carries the ML-DSA-44 key and both
// signatures (about 5 KB). A compact card (Compact reports it) carries only
// the SHA-256 hash of the ML-DSA-44 key and an Ed25519 signature (about
// 1.4 KB, for QR codes): MLDSA, SigEd25519 and SigMLDSA are nil and
// SigCompact is set. Both give the same Address and both can start a
// session; only a full card is a link proof.
type Card struct {
	Name        string
	Ed25519     ed25519.PublicKey
	MLDSA       []byte // packed ML-DSA-44 public key, 1312 bytes; nil on a compact card
	PrekeyEpoch uint32
	Prekey      []byte // packed X-Wing public key of PrekeyEpoch, 1216 bytes
	Links       []string
	Issued      int64  // unix seconds
	Expires     int64  // unix seconds
	SigEd25519  []byte // over the full form; nil on a compact card
	SigMLDSA    []byte // over the full form; nil on a compact card
	// SigCompact is the Ed25519 signature of the compact form. NewCard sets
	// it; a full card parsed from its encoding does not carry it (nil).
	SigCompact []byte

	mldsaHash [32]byte // compact cards: SHA-256 of the ML-DSA-44 key left out
}

// cardBody is the signed part of a card, a CBOR array in this order.
type cardBody struct {
	_           struct{} `cbor:",toarray"`
	Version     uint
	Name        string
	Ed25519     []byte
	MLDSA       []byte
	PrekeyEpoch uint32
	Prekey      []byte
	Links       []string
	Issued      int64
	Expires     int64
}

// cardWire is the encoded card: the body's fields then both signatures.
type cardWire struct {
	_           struct{} `cbor:",toarray"`
	Version     uint
	Name        string
	Ed25519     []byte
	MLDSA       []byte
	PrekeyEpoch uint32
	Prekey      []byte
	Links       []string
	Issued      int64
	Expires     int64
	SigEd25519  []byte
	SigMLDSA    []byte
}

// cborModes holds the immutable CBOR encoder and decoder of this package.
type cborModes struct {
	enc   cbor.EncMode
	dec   cbor.DecMode // cards: arrays of at most 16 elements
	state cbor.DecMode // persisted sessions: up to 2048 elements
}

// modes is built once from constant options; newCBORModes only fails on a
// programming error in those options, caught by every test.
var modes = newCBORModes()

func newCBORModes() cborModes {
	eo := cbor.CoreDetEncOptions()
	eo.NilContainers = cbor.NilContainerAsEmpty
	enc, err := eo.EncMode()
	if err != nil {
		panic(fmt.Sprintf("crypto: CBOR encoder options: %v", err))
	}
	opts := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   4,
		MaxArrayElements:  MaxCardLinks,
		MaxMapPairs:       16,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		UTF8:              cbor.UTF8RejectInvalid,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}
	dec, err := opts.DecMode()
	if err != nil {
		panic(fmt.Sprintf("crypto: CBOR decoder options: %v", err))
	}
	opts.MaxArrayElements = 2048
	state, err := opts.DecMode()
	if err != nil {
		panic(fmt.Sprintf("crypto: CBOR decoder options: %v", err))
	}
	return cborModes{enc: enc, dec: dec, state: state}
}

// NewCard issues a signed card for id, valid from now for validFor. The card
// carries the X-Wing prekey of the epoch current at now; peers accept that
// prekey for about three weeks, so cards should be reissued weekly.
func (id *Identity) NewCard(name string, links []string, now time.Time, validFor time.Duration) (*Card, error) {
	if validFor <= 0 {
		return nil, fmt.Errorf("new card: validity %v is not positive", validFor)
	}
	if err := checkNameLinks(name, links); err != nil {
		return nil, fmt.Errorf("new card: %w", err)
	}
	epoch := PrekeyEpoch(now)
	prekey, err := id.PrekeyPublic(epoch)
	if err != nil {
		return nil, fmt.Errorf("new card: %w", err)
	}
	c := &Card{
		Name:        name,
		Ed25519:     id.PublicKey(),
		MLDSA:       id.MLDSAPublicKey(),
		PrekeyEpoch: epoch,
		Prekey:      prekey,
		Links:       append([]string{}, links...),
		Issued:      now.Unix(),
		Expires:     now.Add(validFor).Unix(),
	}
	msg, err := c.signedBytes()
	if err != nil {
		return nil, fmt.Errorf("new card: %w", err)
	}
	c.SigEd25519 = ed25519.Sign(id.ed, msg)
	c.SigMLDSA = make([]byte, mldsa44.SignatureSize)
	if err := mldsa44.SignTo(id.mldsaPriv, msg, nil, false, c.SigMLDSA); err != nil {
		return nil, fmt.Errorf("new card: ML-DSA-44 signature: %w", err)
	}
	cmsg, err := c.compactSignedBytes()
	if err != nil {
		return nil, fmt.Errorf("new card: %w", err)
	}
	c.SigCompact = ed25519.Sign(id.ed, cmsg)
	return c, nil
}

// signedBytes returns the bytes both signatures cover: the domain prefix and
// the CBOR encoding of the unsigned fields.
func (c *Card) signedBytes() ([]byte, error) {
	body, err := modes.enc.Marshal(cardBody{
		Version: cardVersion, Name: c.Name, Ed25519: c.Ed25519, MLDSA: c.MLDSA,
		PrekeyEpoch: c.PrekeyEpoch, Prekey: c.Prekey, Links: c.Links,
		Issued: c.Issued, Expires: c.Expires,
	})
	if err != nil {
		return nil, fmt.Errorf("encode card body: %w", err)
	}
	return append([]byte(cardSigDomain), body...), nil
}

// Address returns the address of the card's identity (either form).
func (c *Card) Address() Address {
	return DeriveAddress(c.Ed25519, c.MLDSAHash())
}

// Marshal returns the card's canonical CBOR encoding, in the card's own form
// (compact for a compact card).
func (c *Card) Marshal() []byte {
	if c.Compact() {
		return c.MarshalCompact()
	}
	b, err := modes.enc.Marshal(cardWire{
		Version: cardVersion, Name: c.Name, Ed25519: c.Ed25519, MLDSA: c.MLDSA,
		PrekeyEpoch: c.PrekeyEpoch, Prekey: c.Prekey, Links: c.Links,
		Issued: c.Issued, Expires: c.Expires, SigEd25519: c.SigEd25519, SigMLDSA: c.SigMLDSA,
	})
	if err != nil {
		return nil
	}
	return b
}

// URI returns "tern:" followed by the unpadded base64url of Marshal(): the
// full form for a full card (use CompactURI for a QR code).
func (c *Card) URI() string {
	return CardURIScheme + base64.RawURLEncoding.EncodeToString(c.Marshal())
}

// ParseCardURI parses a card URI made by URI and checks it as ParseCard does.
func ParseCardURI(s string, now time.Time) (*Card, error) {
	s = strings.TrimSpace(s)
	if len(s) < len(CardURIScheme) || !strings.EqualFold(s[:len(CardURIScheme)], CardURIScheme) {
		return nil, fmt.Errorf("parse card URI: %w: it must start with %q", ErrCardInvalid, CardURIScheme)
	}
	enc := s[len(CardURIScheme):]
	if len(enc) > base64.RawURLEncoding.EncodedLen(MaxCardSize) {
		return nil, fmt.Errorf("parse card URI: %w: %d characters is over the %d-byte card limit", ErrCardInvalid, len(enc), MaxCardSize)
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("parse card URI: %w: not unpadded base64url (was it cut short?): %v", ErrCardInvalid, err)
	}
	return ParseCard(b, now)
}

// ParseCard decodes a card of either form (full or compact, told apart by
// element 0) and checks its encoding is canonical, its limits, its
// signatures and that it is valid at now.
func ParseCard(b []byte, now time.Time) (*Card, error) {
	if len(b) > MaxCardSize {
		return nil, fmt.Errorf("parse card: %w: %d bytes is over the %d-byte limit", ErrCardInvalid, len(b), MaxCardSize)
	}
	var fields []cbor.RawMessage
	if err := modes.dec.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("parse card: %w: bad CBOR: %v", ErrCardInvalid, err)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("parse card: %w: empty array", ErrCardInvalid)
	}
	var version uint
	if err := modes.dec.Unmarshal(fields[0], &version); err != nil {
		return nil, fmt.Errorf("parse card: %w: element 0 (version) is not an unsigned integer: %v", ErrCardInvalid, err)
	}
	var (
		c   *Card
		err error
	)
	switch version {
	case cardVersion:
		c, err = parseFullCard(b)
	case cardVersionCompact:
		c, err = parseCompactCard(b)
	default:
		err = fmt.Errorf("%w: version %d, this node reads versions %d (full) and %d (compact) (upgrade tern)",
			ErrCardInvalid, version, cardVersion, cardVersionCompact)
	}
	if err != nil {
		return nil, fmt.Errorf("parse card: %w", err)
	}
	if err := c.checkTime(now); err != nil {
		return nil, fmt.Errorf("parse card: %w", err)
	}
	return c, nil
}

// parseFullCard decodes and verifies a full card (no time check).
func parseFullCard(b []byte) (*Card, error) {
	var w cardWire
	if err := modes.dec.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: bad CBOR for a full card: %v", ErrCardInvalid, err)
	}
	if err := checkSizes([]fieldSize{
		{"Ed25519 key", len(w.Ed25519), ed25519.PublicKeySize},
		{"ML-DSA-44 key", len(w.MLDSA), mldsa44.PublicKeySize},
		{"X-Wing prekey", len(w.Prekey), xwing.PublicKeySize},
		{"Ed25519 signature", len(w.SigEd25519), ed25519.SignatureSize},
		{"ML-DSA-44 signature", len(w.SigMLDSA), mldsa44.SignatureSize},
	}); err != nil {
		return nil, err
	}
	if err := checkNameLinks(w.Name, w.Links); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCardInvalid, err)
	}
	c := &Card{
		Name: w.Name, Ed25519: w.Ed25519, MLDSA: w.MLDSA, PrekeyEpoch: w.PrekeyEpoch,
		Prekey: w.Prekey, Links: w.Links, Issued: w.Issued, Expires: w.Expires,
		SigEd25519: w.SigEd25519, SigMLDSA: w.SigMLDSA,
	}
	if c.Links == nil {
		c.Links = []string{}
	}
	if !bytes.Equal(c.Marshal(), b) {
		return nil, fmt.Errorf("%w: not in canonical CBOR encoding", ErrCardInvalid)
	}
	msg, err := c.signedBytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCardInvalid, err)
	}
	if !ed25519.Verify(c.Ed25519, msg, c.SigEd25519) {
		return nil, fmt.Errorf("%w: bad Ed25519 signature (the card was altered or damaged)", ErrCardInvalid)
	}
	var pk mldsa44.PublicKey
	if err := pk.UnmarshalBinary(c.MLDSA); err != nil {
		return nil, fmt.Errorf("%w: ML-DSA-44 key: %v", ErrCardInvalid, err)
	}
	if !mldsa44.Verify(&pk, msg, nil, c.SigMLDSA) {
		return nil, fmt.Errorf("%w: bad ML-DSA-44 signature (the card was altered or damaged)", ErrCardInvalid)
	}
	return c, nil
}

// fieldSize is a decoded field's length and the length it must have.
type fieldSize struct {
	what      string
	got, want int
}

func checkSizes(fs []fieldSize) error {
	for _, f := range fs {
		if f.got != f.want {
			return fmt.Errorf("%w: %s is %d bytes, want %d", ErrCardInvalid, f.what, f.got, f.want)
		}
	}
	return nil
}

// checkTime checks the card is valid at now.
func (c *Card) checkTime(now time.Time) error {
	if c.Expires <= c.Issued {
		return fmt.Errorf("%w: card of %q expires (%d) before it is issued (%d)", ErrCardInvalid, c.Name, c.Expires, c.Issued)
	}
	day := func(s int64) string { return time.Unix(s, 0).UTC().Format("2006-01-02 15:04 UTC") }
	if now.Unix() >= c.Expires {
		return quietWrap{ErrCardExpired, fmt.Sprintf("contact card of %q (%s) expired on %s: ask %s for a fresh card",
			c.Name, c.Address().Short(), day(c.Expires), c.displayName())}
	}
	if c.Issued > now.Add(cardClockSkew).Unix() {
		return fmt.Errorf("%w: contact card of %q is issued on %s, in the future of this device's clock (%s): check the clock here and on %s's device",
			ErrCardInvalid, c.Name, day(c.Issued), day(now.Unix()), c.displayName())
	}
	return nil
}

func (c *Card) displayName() string {
	if c.Name == "" {
		return c.Address().Short()
	}
	return c.Name
}

// checkNameLinks enforces the name and link limits.
func checkNameLinks(name string, links []string) error {
	if len(name) > MaxCardNameSize {
		return fmt.Errorf("name is %d bytes, the limit is %d", len(name), MaxCardNameSize)
	}
	if !utf8.ValidString(name) {
		return errors.New("name is not valid UTF-8")
	}
	if len(links) > MaxCardLinks {
		return fmt.Errorf("%d links, the limit is %d", len(links), MaxCardLinks)
	}
	for i, l := range links {
		if len(l) > MaxCardLinkSize {
			return fmt.Errorf("link %d is %d bytes, the limit is %d", i, len(l), MaxCardLinkSize)
		}
		u, err := url.Parse(l)
		if err != nil || u.Scheme == "" {
			return fmt.Errorf("link %d (%q) is not a URL with a scheme, like quic://host:port", i, truncate(l, 40))
		}
	}
	return nil
}

// SAS returns the short authentication string of two identities: five groups
// of four digits, the same whichever card is a and which is b, and different
// (with overwhelming probability) for any other pair. Two people who read the
// same string on both devices hold each other's genuine cards.
func SAS(a, b *Card) string {
	ia, ib := sasIdentity(a), sasIdentity(b)
	if bytes.Compare(ia, ib) > 0 {
		ia, ib = ib, ia
	}
	h := sha256.New()
	h.Write([]byte("tern/v1/sas"))
	h.Write(ia)
	h.Write(ib)
	sum := h.Sum(nil)
	groups := make([]string, 5)
	for i := range groups {
		groups[i] = fmt.Sprintf("%04d", binary.BigEndian.Uint32(sum[4*i:])%10000)
	}
	return strings.Join(groups, " ")
}

// sasIdentity is the long-term identity a SAS commits to: the Ed25519 key and
// the hash of the ML-DSA-44 key (the prekey rotates and is left out). A
// compact card gives the same SAS as the full one.
func sasIdentity(c *Card) []byte {
	h := c.MLDSAHash()
	return append(append([]byte{}, c.Ed25519...), h[:]...)
}

// VerifyLinkProof checks that proof (a full card's Marshal()) is a valid
// card at now whose Ed25519 key is pub, and returns its address. Links use it
// to bind a peer's certificate key to a Tern address. A compact card is
// refused: a link proof carries the ML-DSA-44 key and signature.
func VerifyLinkProof(pub ed25519.PublicKey, proof []byte, now time.Time) (Address, error) {
	c, err := ParseCard(proof, now)
	if err != nil {
		return Address{}, fmt.Errorf("verify link proof: %w", err)
	}
	if c.Compact() {
		return Address{}, fmt.Errorf("verify link proof: %w: the peer sent a compact card; a link proof must be the full card (Card.Marshal of a card from NewCard)", ErrCardInvalid)
	}
	if len(pub) != ed25519.PublicKeySize || !bytes.Equal(pub, c.Ed25519) {
		return Address{}, fmt.Errorf("verify link proof: %w: the card's Ed25519 key is not the link's certificate key (the peer presented someone else's card)", ErrCardInvalid)
	}
	return c.Address(), nil
}

// quietWrap is an error whose message is msg alone but which still matches
// err with errors.Is (for messages that would only repeat the sentinel).
type quietWrap struct {
	err error
	msg string
}

func (q quietWrap) Error() string { return q.msg }
func (q quietWrap) Unwrap() error { return q.err }
