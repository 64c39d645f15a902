package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Limits of the wire format. A bundle that breaks one is malformed.
const (
	// MaxPayload is the largest payload a bundle may carry (16 MiB). Larger
	// application data is split by the application; smaller hops cut a
	// bundle into fragments.
	MaxPayload = 16 << 20
	// MaxHeaderLen is the largest encoding of everything in a bundle except
	// the payload bytes themselves: the array head, every field and the
	// payload's byte-string head. Len(encoding) <= MaxHeaderLen+len(Payload).
	MaxHeaderLen = 75
	// MaxHopLimit is the largest HopLimit an originator may set.
	MaxHopLimit = 64
	// MaxLifetime is the longest Lifetime a bundle may ask for, in
	// milliseconds (366 days). It bounds store use and keeps every time
	// computation inside time.Duration.
	MaxLifetime = 366 * 24 * 60 * 60 * 1000
)

var (
	// ErrMalformed wraps every decoding and validation failure. The wrapping
	// error names the field and the problem.
	ErrMalformed = errors.New("bundle: malformed")
	// ErrExpired means the bundle's Age has reached its Lifetime: drop it.
	ErrExpired = errors.New("bundle: expired")
	// ErrHopLimit means the bundle arrived with HopLimit 0: deliver it
	// locally if it is for this node, never forward it.
	ErrHopLimit = errors.New("bundle: hop limit used up")
	// ErrHopByHop means a custody ack or announce was about to be forwarded;
	// those kinds only ever travel one hop.
	ErrHopByHop = errors.New("bundle: hop-by-hop kind is never forwarded")
)

// encMode writes Core Deterministic Encoding (RFC 8949 section 4.2.1):
// shortest heads, definite lengths, sorted map keys. It is immutable.
var encMode = mustEncMode()

// decBundle reads exactly one bundle: no tags, no indefinite lengths, no
// simple values (so null cannot stand in for 0), at most 16 array elements.
var decBundle = mustDecMode(16)

func mustEncMode() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("bundle: core deterministic encoding options rejected by cbor: %v", err))
	}
	return em
}

// strictDecOptions returns the decoding options every decoder in this
// package uses; maxArray bounds the longest array accepted.
func strictDecOptions(maxArray int) cbor.DecOptions {
	var rejectSimple []func(*cbor.SimpleValueRegistry) error
	for sv := 0; sv < 256; sv++ {
		if sv >= 24 && sv <= 31 {
			continue // reserved, never well-formed anyway
		}
		rejectSimple = append(rejectSimple, cbor.WithRejectedSimpleValue(cbor.SimpleValue(sv)))
	}
	simple, err := cbor.NewSimpleValueRegistryFromDefaults(rejectSimple...)
	if err != nil {
		panic(fmt.Sprintf("bundle: simple value registry: %v", err))
	}
	return cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  maxArray,
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		SimpleValues:      simple,
		NaN:               cbor.NaNDecodeForbidden,
		Inf:               cbor.InfDecodeForbidden,
	}
}

func mustDecMode(maxArray int) cbor.DecMode {
	dm, err := strictDecOptions(maxArray).DecMode()
	if err != nil {
		panic(fmt.Sprintf("bundle: strict decoding options rejected by cbor: %v", err))
	}
	return dm
}

// String names a kind for logs and errors.
func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindCustodyAck:
		return "custody-ack"
	case KindAnnounce:
		return "announce"
	case KindClearSigned:
		return "clear-signed"
	case KindSummary:
		return "summary"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// HopByHop reports whether bundles of this kind only ever cross one link.
func (k Kind) HopByHop() bool {
	return k == KindCustodyAck || k == KindAnnounce || k == KindSummary
}

// knownFlags is every flag bit version 1 defines.
const knownFlags = FlagClockUnsynced | FlagOverAirClear | FlagDerivedID | FlagBulk

// NewID draws a fresh random bundle ID from rand (crypto/rand.Reader in
// production, a seeded source in simulations).
func NewID(rand io.Reader) (ID, error) {
	var id ID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return ID{}, fmt.Errorf("bundle: drawing a random ID: %w", err)
	}
	if id == (ID{}) {
		return ID{}, errors.New("bundle: random source returned 16 zero bytes; it is broken, check the reader passed to NewID")
	}
	return id, nil
}

// String returns the ID as 32 lowercase hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// String returns the address as 32 lowercase hex digits.
func (a Addr) String() string { return hex.EncodeToString(a[:]) }

// ParseID reads the form String writes: exactly 32 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return ID{}, fmt.Errorf("%w: ID %q has %d characters, want %d hex digits", ErrMalformed, s, len(s), 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("%w: ID %q is not hex: %w", ErrMalformed, s, err)
	}
	return id, nil
}

// UnmarshalCBOR accepts exactly a 16-byte byte string (0x50 and 16 bytes).
// Without it a shorter or longer byte string would be silently truncated or
// zero-filled.
func (id *ID) UnmarshalCBOR(data []byte) error { return unmarshal16((*[16]byte)(id), data, "ID") }

// UnmarshalCBOR accepts exactly a 16-byte byte string, like ID.
func (a *Addr) UnmarshalCBOR(data []byte) error { return unmarshal16((*[16]byte)(a), data, "Addr") }

func unmarshal16(dst *[16]byte, data []byte, name string) error {
	if len(data) != 17 || data[0] != 0x40|16 {
		return fmt.Errorf("%w: %s must be a 16-byte byte string (0x50 + 16 bytes), got %d encoded bytes starting %#x", ErrMalformed, name, len(data), firstByte(data))
	}
	copy(dst[:], data[1:])
	return nil
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// Validate checks every rule that Marshal and Unmarshal enforce. The error
// wraps ErrMalformed and names the field.
func (b *Bundle) Validate() error {
	switch {
	case b.Version != Version:
		return fmt.Errorf("%w: Version %d: this node reads and writes only version %d; upgrade the older side", ErrMalformed, b.Version, Version)
	case b.Kind > KindSummary:
		return fmt.Errorf("%w: Kind %d is unknown (known: 0 data, 1 custody-ack, 2 announce, 3 clear-signed, 4 summary)", ErrMalformed, uint8(b.Kind))
	case b.Flags&^knownFlags != 0:
		return fmt.Errorf("%w: Flags %#02x set bits unknown to version %d (known mask %#02x)", ErrMalformed, uint8(b.Flags), Version, uint8(knownFlags))
	case b.ID == ID{}:
		return fmt.Errorf("%w: ID is all zero; draw it with NewID", ErrMalformed)
	case b.Created < 0:
		return fmt.Errorf("%w: Created %d is before 1970; use 0 for an unknown creation time", ErrMalformed, b.Created)
	case b.Lifetime == 0:
		return fmt.Errorf("%w: Lifetime is 0, the bundle would be born expired", ErrMalformed)
	case b.Lifetime > MaxLifetime:
		return fmt.Errorf("%w: Lifetime %d ms exceeds the maximum %d ms (366 days)", ErrMalformed, b.Lifetime, uint64(MaxLifetime))
	case b.Age > b.Lifetime:
		return fmt.Errorf("%w: Age %d ms exceeds Lifetime %d ms; a correct hop drops a bundle before that", ErrMalformed, b.Age, b.Lifetime)
	case b.HopLimit > MaxHopLimit:
		return fmt.Errorf("%w: HopLimit %d exceeds the maximum %d", ErrMalformed, b.HopLimit, MaxHopLimit)
	case b.Kind.HopByHop() && b.HopLimit != 0:
		return fmt.Errorf("%w: HopLimit %d on a %s bundle: that kind is hop-by-hop and must carry HopLimit 0", ErrMalformed, b.HopLimit, b.Kind)
	case len(b.Payload) == 0:
		return fmt.Errorf("%w: Payload is empty; every kind carries at least one byte", ErrMalformed)
	case len(b.Payload) > MaxPayload:
		return fmt.Errorf("%w: Payload is %d bytes, over the %d-byte maximum; split it in the application", ErrMalformed, len(b.Payload), MaxPayload)
	case b.Flags&FlagDerivedID != 0 && b.ID != DerivedID(b.Dest, b.Payload):
		return fmt.Errorf("%w: ID %s does not match its payload although FlagDerivedID is set (tampered, or built without DerivedID)", ErrMalformed, b.ID)
	}
	return nil
}

// DerivedID is the ID of a bundle with FlagDerivedID: the first 16 bytes of
// SHA-256("tern/v1/bundle-id" || dest || payload). Sealed payloads never
// repeat (every one has a fresh nonce), so derived IDs are unique; a
// replayed payload gets the same ID and is caught by dedupe.
func DerivedID(dest Addr, payload []byte) ID {
	h := sha256.New()
	h.Write([]byte("tern/v1/bundle-id"))
	h.Write(dest[:])
	h.Write(payload)
	var id ID
	copy(id[:], h.Sum(nil))
	return id
}

// Marshal validates b and encodes it with Core Deterministic Encoding: the
// same bundle always gives the same bytes.
func (b *Bundle) Marshal() ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	out, err := encMode.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding %s: %w", b.ID, err)
	}
	return out, nil
}

// Unmarshal decodes and validates one bundle. It is strict: data must be
// exactly one definite-length CBOR array of the ten fields in their
// deterministic (shortest) encoding, with no tags, no trailing bytes, and
// every Validate rule met. Errors wrap ErrMalformed. The payload is copied;
// data may be reused afterwards.
func Unmarshal(data []byte) (*Bundle, error) {
	if len(data) > MaxHeaderLen+MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes is larger than any valid bundle (%d)", ErrMalformed, len(data), MaxHeaderLen+MaxPayload)
	}
	b := new(Bundle)
	if err := decBundle.Unmarshal(data, b); err != nil {
		return nil, wrapMalformed("", err)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	// Without tags, floats, simple values or indefinite lengths, the only
	// freedom left to an encoder is a longer-than-needed head, which makes
	// the encoding longer. Equal length therefore means deterministic.
	if n := b.EncodedLen(); n != len(data) {
		return nil, fmt.Errorf("%w: encoding is %d bytes, the deterministic encoding is %d: some integer or length head is not in its shortest form", ErrMalformed, len(data), n)
	}
	return b, nil
}

// EncodedLen returns the length of b's deterministic encoding without
// encoding it. EncodedLen()-len(Payload) is the header overhead.
func (b *Bundle) EncodedLen() int {
	return 1 + // array(10)
		headLen(uint64(b.Version)) + headLen(uint64(b.Kind)) + headLen(uint64(b.Flags)) +
		17 + 17 + // Dest, ID
		intLen(b.Created) + headLen(b.Age) + headLen(b.Lifetime) + headLen(uint64(b.HopLimit)) +
		headLen(uint64(len(b.Payload))) + len(b.Payload)
}

// headLen is the size of a CBOR head carrying argument n in shortest form.
func headLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

func intLen(v int64) int {
	if v < 0 {
		return headLen(uint64(-1 - v))
	}
	return headLen(uint64(v))
}

// Remaining returns how long the bundle still lives, given how long this node
// has held it so far (held). Relies on Age+held, not on the wall clock, so a
// node without a synchronised clock neither drops nor keeps bundles wrongly.
// held should come from a monotonic clock (time.Since on a time read at
// arrival); a negative held counts as 0. A result of 0 means expired.
func (b *Bundle) Remaining(held time.Duration) time.Duration {
	held = max(held, 0)
	lifetime := min(b.Lifetime, MaxLifetime) // Validate forbids more; keep the arithmetic in range
	if b.Age >= lifetime {
		return 0
	}
	left := time.Duration(lifetime-b.Age) * time.Millisecond
	if held >= left {
		return 0
	}
	return left - held
}

// Aged returns a copy ready to forward: Age advanced by held, HopLimit
// decremented; error if expired or the hop limit is used up. held is rounded
// up to whole milliseconds, so rounding can only make a bundle expire early,
// never live too long. The copy shares Payload with b; treat both as
// read-only. Errors: ErrHopByHop for custody acks and announces, ErrExpired,
// ErrHopLimit.
func (b *Bundle) Aged(held time.Duration) (*Bundle, error) {
	if b.Kind.HopByHop() {
		return nil, fmt.Errorf("%w: %s bundle %s", ErrHopByHop, b.Kind, b.ID)
	}
	held = max(held, 0)
	heldMs := uint64(held / time.Millisecond)
	if held%time.Millisecond != 0 {
		heldMs++
	}
	age := b.Age + heldMs
	if age < b.Age || age >= b.Lifetime { // overflow, or no time left
		return nil, fmt.Errorf("%w: bundle %s aged %d ms + held %d ms reaches its lifetime %d ms", ErrExpired, b.ID, b.Age, heldMs, b.Lifetime)
	}
	if b.HopLimit == 0 {
		return nil, fmt.Errorf("%w: bundle %s arrived with HopLimit 0", ErrHopLimit, b.ID)
	}
	out := *b
	out.Age = age
	out.HopLimit--
	return &out, nil
}
