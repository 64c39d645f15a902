package group

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
)

// The wire format is documented byte by byte in FORMAT.md.

// Kind says what a group packet is (element 0 of its CBOR array).
type Kind uint8

// Packet kinds.
const (
	KindUpdate  Kind = 1 // owner -> member: the signed membership of a new epoch, with its key
	KindRemoved Kind = 2 // owner -> removed member: signed notice, no key
	KindText    Kind = 3 // member -> member: a text encrypted with the epoch's key
	KindAck     Kind = 4 // member -> author: a group text was delivered or read
)

// Ack states.
const (
	AckDelivered = 1
	AckRead      = 2
)

// Limits.
const (
	IDSize     = 16
	KeySize    = chacha20poly1305.KeySize // 32
	NonceSize  = chacha20poly1305.NonceSizeX
	MaxMembers = 32
	// MaxNameLen bounds a group's and a member's name, in bytes of UTF-8.
	MaxNameLen = 64
	// MaxText is the longest group text in bytes: what fits in one
	// application message with the group framing.
	MaxText = message.MaxData - 256
	// maxCard bounds a member's card (crypto.MaxCardSize).
	maxCard = crypto.MaxCardSize
)

const wireVersion = 1

// Signature and key-binding domains (FORMAT.md).
const (
	domainMembership = "tern/v1/group-membership\x00"
	domainRemoved    = "tern/v1/group-removed\x00"
	domainText       = "tern/v1/group-text\x00"
	domainMsgID      = "tern/v1/group-msg\x00"
)

// ErrMalformed wraps every decoding and validation failure.
var ErrMalformed = errors.New("group: malformed")

// ErrForged wraps a signature or authentication failure.
var ErrForged = errors.New("group: forged")

// ID names a group: 16 random bytes chosen by its owner.
type ID [IDSize]byte

// String is the ID as 32 hex characters.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID reads the 32-hex-character form.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != IDSize {
		return id, fmt.Errorf("group id %q is not 32 hex characters", s)
	}
	copy(id[:], b)
	return id, nil
}

// Member is one entry of a membership list.
type Member struct {
	Address crypto.Address
	Name    string // as the owner knows them
	Card    []byte // their contact card (either form), so members can start sessions with each other
}

// Membership is one epoch of a group as its owner signs it.
type Membership struct {
	Group          ID
	Epoch          uint64 // 1 at creation, +1 on every change
	Name           string
	OwnerEd25519   ed25519.PublicKey
	OwnerMLDSAHash [32]byte
	Members        []Member // the owner among them
	Key            [KeySize]byte
	Issued         int64 // owner's clock, unix ms
}

// Owner is the address of the owner's identity.
func (m *Membership) Owner() crypto.Address {
	return crypto.DeriveAddress(m.OwnerEd25519, m.OwnerMLDSAHash)
}

// Has reports whether a is a member.
func (m *Membership) Has(a crypto.Address) bool {
	for _, x := range m.Members {
		if x.Address == a {
			return true
		}
	}
	return false
}

// Removal is the owner's signed notice to a removed member.
type Removal struct {
	Group          ID
	Epoch          uint64 // the first epoch without the member
	Removed        crypto.Address
	OwnerEd25519   ed25519.PublicKey
	OwnerMLDSAHash [32]byte
	Issued         int64
}

// Owner is the address of the owner's identity.
func (r *Removal) Owner() crypto.Address {
	return crypto.DeriveAddress(r.OwnerEd25519, r.OwnerMLDSAHash)
}

// Packet is one decoded group packet. Decode checks the structure and, for
// updates and removals, the owner's signature against the owner key the
// packet names; whether that owner is the group's is the caller's check.
type Packet struct {
	Kind  Kind
	Group ID

	Membership *Membership // KindUpdate
	Removal    *Removal    // KindRemoved

	// KindText
	Epoch      uint64
	Nonce      [NonceSize]byte
	Ciphertext []byte

	// KindAck
	Msg   [16]byte
	State uint8
}

// MsgID is the ID of a text packet: the same in every member's copy.
func (p *Packet) MsgID() [16]byte { return msgID(p.Group, p.Nonce[:], p.Ciphertext) }

func msgID(g ID, nonce, ct []byte) [16]byte {
	h := sha256.New()
	h.Write([]byte(domainMsgID))
	h.Write(g[:])
	h.Write(nonce)
	h.Write(ct)
	return [16]byte(h.Sum(nil))
}

// ---- CBOR layouts (FORMAT.md) ----

type signedWire struct {
	_    struct{} `cbor:",toarray"`
	Kind uint8
	Body []byte
	Sig  []byte
}

type membershipWire struct {
	_         struct{} `cbor:",toarray"`
	Version   uint
	Group     []byte
	Epoch     uint64
	Name      string
	OwnerEd   []byte
	OwnerHash []byte
	Members   []memberWire
	Key       []byte
	Issued    int64
}

type memberWire struct {
	_       struct{} `cbor:",toarray"`
	Address []byte
	Name    string
	Card    []byte
}

type removalWire struct {
	_         struct{} `cbor:",toarray"`
	Version   uint
	Group     []byte
	Epoch     uint64
	Removed   []byte
	OwnerEd   []byte
	OwnerHash []byte
	Issued    int64
}

type textWire struct {
	_          struct{} `cbor:",toarray"`
	Kind       uint8
	Group      []byte
	Epoch      uint64
	Nonce      []byte
	Ciphertext []byte
}

type textPlainWire struct {
	_      struct{} `cbor:",toarray"`
	Sender []byte
	Sent   int64
	Text   string
}

type ackWire struct {
	_     struct{} `cbor:",toarray"`
	Kind  uint8
	Group []byte
	Msg   []byte
	State uint8
}

type cborModes struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

// newModes builds the strict CBOR modes; options are constants, so an error
// is a programming error caught by every test.
func newModes() cborModes {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("group: core deterministic encoding options rejected by cbor: %v", err))
	}
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  2 * MaxMembers,
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		NaN:               cbor.NaNDecodeForbidden,
		Inf:               cbor.InfDecodeForbidden,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("group: strict decoding options rejected by cbor: %v", err))
	}
	return cborModes{enc: enc, dec: dec}
}

var modes = newModes()

// decodeStrict decodes b into v and insists that b is v's canonical
// encoding (so one packet has one encoding, and the signed bytes are
// exactly what was decoded).
func decodeStrict(what string, b []byte, v any) error {
	if err := modes.dec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
	}
	again, err := modes.enc.Marshal(v)
	if err != nil || !bytes.Equal(again, b) {
		return fmt.Errorf("%w: %s is not in canonical CBOR (deterministic encoding)", ErrMalformed, what)
	}
	return nil
}

// checkName validates a group or member name.
func checkName(what, s string, empty bool) error {
	switch {
	case s == "" && !empty:
		return fmt.Errorf("%w: %s is empty", ErrMalformed, what)
	case len(s) > MaxNameLen:
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrMalformed, what, len(s), MaxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, what)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %s contains a control character (line break, tab...)", ErrMalformed, what)
	}
	return nil
}

// Validate checks the rules Decode enforces on a membership.
func (m *Membership) Validate() error {
	switch {
	case m.Group == ID{}:
		return fmt.Errorf("%w: group id is zero", ErrMalformed)
	case m.Epoch == 0:
		return fmt.Errorf("%w: epoch 0; epochs start at 1", ErrMalformed)
	case len(m.OwnerEd25519) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: owner key is %d bytes, want %d", ErrMalformed, len(m.OwnerEd25519), ed25519.PublicKeySize)
	case len(m.Members) == 0 || len(m.Members) > MaxMembers:
		return fmt.Errorf("%w: %d members; a group has 1 to %d", ErrMalformed, len(m.Members), MaxMembers)
	case m.Key == [KeySize]byte{}:
		return fmt.Errorf("%w: the epoch key is all zeros", ErrMalformed)
	case m.Issued < 0:
		return fmt.Errorf("%w: issued before 1970", ErrMalformed)
	}
	if err := checkName("group name", m.Name, false); err != nil {
		return err
	}
	seen := map[crypto.Address]bool{}
	for _, x := range m.Members {
		if seen[x.Address] {
			return fmt.Errorf("%w: member %s is listed twice", ErrMalformed, x.Address.Short())
		}
		seen[x.Address] = true
		if x.Address.IsZero() {
			return fmt.Errorf("%w: a member has the zero address", ErrMalformed)
		}
		if err := checkName("member name", x.Name, true); err != nil {
			return err
		}
		if len(x.Card) == 0 || len(x.Card) > maxCard {
			return fmt.Errorf("%w: card of member %s is %d bytes, want 1 to %d", ErrMalformed, x.Address.Short(), len(x.Card), maxCard)
		}
	}
	if !seen[m.Owner()] {
		return fmt.Errorf("%w: the owner is not among the members", ErrMalformed)
	}
	return nil
}

func (m *Membership) body() ([]byte, error) {
	w := membershipWire{Version: wireVersion, Group: m.Group[:], Epoch: m.Epoch, Name: m.Name,
		OwnerEd: m.OwnerEd25519, OwnerHash: m.OwnerMLDSAHash[:], Key: m.Key[:], Issued: m.Issued,
		Members: make([]memberWire, len(m.Members))}
	for i, x := range m.Members {
		w.Members[i] = memberWire{Address: x.Address[:], Name: x.Name, Card: x.Card}
	}
	return modes.enc.Marshal(w)
}

// EncodeUpdate signs m with the owner's identity and returns the packet.
// The identity must be m's owner.
func EncodeUpdate(owner *crypto.Identity, m *Membership) ([]byte, error) {
	if m.Owner() != owner.Address() {
		return nil, errors.New("group: only the owner signs a membership")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	body, err := m.body()
	if err != nil {
		return nil, fmt.Errorf("group: encoding membership: %w", err)
	}
	sig := ed25519.Sign(owner.SigningKey(), append([]byte(domainMembership), body...))
	return encodePacket(signedWire{Kind: uint8(KindUpdate), Body: body, Sig: sig})
}

func (r *Removal) body() ([]byte, error) {
	return modes.enc.Marshal(removalWire{Version: wireVersion, Group: r.Group[:], Epoch: r.Epoch, Removed: r.Removed[:],
		OwnerEd: r.OwnerEd25519, OwnerHash: r.OwnerMLDSAHash[:], Issued: r.Issued})
}

// EncodeRemoved signs the removal notice with the owner's identity.
func EncodeRemoved(owner *crypto.Identity, r *Removal) ([]byte, error) {
	if r.Owner() != owner.Address() {
		return nil, errors.New("group: only the owner signs a removal")
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	body, err := r.body()
	if err != nil {
		return nil, fmt.Errorf("group: encoding removal: %w", err)
	}
	sig := ed25519.Sign(owner.SigningKey(), append([]byte(domainRemoved), body...))
	return encodePacket(signedWire{Kind: uint8(KindRemoved), Body: body, Sig: sig})
}

func (r *Removal) validate() error {
	switch {
	case r.Group == ID{}:
		return fmt.Errorf("%w: group id is zero", ErrMalformed)
	case r.Epoch < 2:
		return fmt.Errorf("%w: removal at epoch %d; a removal starts epoch 2 or later", ErrMalformed, r.Epoch)
	case r.Removed.IsZero():
		return fmt.Errorf("%w: removed member is the zero address", ErrMalformed)
	case len(r.OwnerEd25519) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: owner key is %d bytes", ErrMalformed, len(r.OwnerEd25519))
	case r.Issued < 0:
		return fmt.Errorf("%w: issued before 1970", ErrMalformed)
	}
	return nil
}

// textAD is the associated data of a group text: it binds the ciphertext
// to its group and epoch.
func textAD(g ID, epoch uint64) []byte {
	ad := append([]byte(domainText), g[:]...)
	return binary.BigEndian.AppendUint64(ad, epoch)
}

// EncodeText encrypts text once with the epoch's key; sender is the author
// (checked by every recipient against the session it arrived on). It
// returns the packet and the message's ID.
func EncodeText(key [KeySize]byte, g ID, epoch uint64, sender crypto.Address, sent int64, text string, rnd io.Reader) ([]byte, [16]byte, error) {
	switch {
	case text == "":
		return nil, [16]byte{}, errors.New("empty message: write some text")
	case len(text) > MaxText:
		return nil, [16]byte{}, fmt.Errorf("the message is %d bytes; a group text is at most %d", len(text), MaxText)
	case !utf8.ValidString(text):
		return nil, [16]byte{}, errors.New("the message is not valid UTF-8")
	}
	pt, err := modes.enc.Marshal(textPlainWire{Sender: sender[:], Sent: max(sent, 0), Text: text})
	if err != nil {
		return nil, [16]byte{}, err
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, [16]byte{}, err
	}
	var nonce [NonceSize]byte
	if _, err := io.ReadFull(rnd, nonce[:]); err != nil {
		return nil, [16]byte{}, fmt.Errorf("group: reading a nonce: %w", err)
	}
	ct := aead.Seal(nil, nonce[:], pt, textAD(g, epoch))
	data, err := encodePacket(textWire{Kind: uint8(KindText), Group: g[:], Epoch: epoch, Nonce: nonce[:], Ciphertext: ct})
	return data, msgID(g, nonce[:], ct), err
}

// OpenText decrypts a text packet with its epoch's key.
func OpenText(p *Packet, key [KeySize]byte) (sender crypto.Address, sent int64, text string, err error) {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return sender, 0, "", err
	}
	pt, err := aead.Open(nil, p.Nonce[:], p.Ciphertext, textAD(p.Group, p.Epoch))
	if err != nil {
		return sender, 0, "", fmt.Errorf("%w: group text does not decrypt with the key of epoch %d", ErrForged, p.Epoch)
	}
	var w textPlainWire
	if err := decodeStrict("group text", pt, &w); err != nil {
		return sender, 0, "", err
	}
	switch {
	case len(w.Sender) != crypto.AddressSize:
		return sender, 0, "", fmt.Errorf("%w: group text sender is %d bytes", ErrMalformed, len(w.Sender))
	case w.Sent < 0:
		return sender, 0, "", fmt.Errorf("%w: group text sent before 1970", ErrMalformed)
	case w.Text == "" || len(w.Text) > MaxText:
		return sender, 0, "", fmt.Errorf("%w: group text of %d bytes, want 1 to %d", ErrMalformed, len(w.Text), MaxText)
	}
	return crypto.Address(w.Sender), w.Sent, w.Text, nil
}

// EncodeAck says message msg of group g was delivered or read.
func EncodeAck(g ID, msg [16]byte, state uint8) ([]byte, error) {
	if state != AckDelivered && state != AckRead {
		return nil, fmt.Errorf("group: ack state %d", state)
	}
	return encodePacket(ackWire{Kind: uint8(KindAck), Group: g[:], Msg: msg[:], State: state})
}

func encodePacket(v any) ([]byte, error) {
	b, err := modes.enc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("group: encoding: %w", err)
	}
	if len(b) > message.MaxData {
		return nil, fmt.Errorf("group: the packet is %d bytes, over the %d-byte limit of one message (too many members with full cards: have them share compact cards, or make the group smaller)", len(b), message.MaxData)
	}
	return b, nil
}

// Decode parses one group packet (the Data of a message.Group). Errors
// wrap ErrMalformed, or ErrForged for a signature that does not verify.
func Decode(data []byte) (*Packet, error) {
	if len(data) == 0 || len(data) > message.MaxData {
		return nil, fmt.Errorf("%w: %d bytes; a group packet is 1 to %d", ErrMalformed, len(data), message.MaxData)
	}
	// 0x83/0x84/0x85: an array of 3, 4 or 5 items; the kind follows.
	if data[0] < 0x83 || data[0] > 0x85 || len(data) < 2 {
		return nil, fmt.Errorf("%w: not a group packet (want a CBOR array of 3 to 5 items)", ErrMalformed)
	}
	k := Kind(data[1])
	switch k {
	case KindUpdate, KindRemoved:
		var w signedWire
		if err := decodeStrict(fmt.Sprintf("%s packet", k), data, &w); err != nil {
			return nil, err
		}
		if len(w.Sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(w.Sig), ed25519.SignatureSize)
		}
		if k == KindUpdate {
			return decodeUpdate(w)
		}
		return decodeRemoved(w)
	case KindText:
		var w textWire
		if err := decodeStrict("text packet", data, &w); err != nil {
			return nil, err
		}
		switch {
		case len(w.Group) != IDSize:
			return nil, fmt.Errorf("%w: group id is %d bytes", ErrMalformed, len(w.Group))
		case w.Epoch == 0:
			return nil, fmt.Errorf("%w: text of epoch 0", ErrMalformed)
		case len(w.Nonce) != NonceSize:
			return nil, fmt.Errorf("%w: nonce is %d bytes, want %d", ErrMalformed, len(w.Nonce), NonceSize)
		case len(w.Ciphertext) < chacha20poly1305.Overhead:
			return nil, fmt.Errorf("%w: ciphertext of %d bytes is shorter than its tag", ErrMalformed, len(w.Ciphertext))
		}
		return &Packet{Kind: k, Group: ID(w.Group), Epoch: w.Epoch, Nonce: [NonceSize]byte(w.Nonce), Ciphertext: w.Ciphertext}, nil
	case KindAck:
		var w ackWire
		if err := decodeStrict("ack packet", data, &w); err != nil {
			return nil, err
		}
		switch {
		case len(w.Group) != IDSize || len(w.Msg) != 16:
			return nil, fmt.Errorf("%w: ack with a %d-byte group id and a %d-byte message id", ErrMalformed, len(w.Group), len(w.Msg))
		case w.State != AckDelivered && w.State != AckRead:
			return nil, fmt.Errorf("%w: ack state %d (want 1 delivered or 2 read)", ErrMalformed, w.State)
		}
		return &Packet{Kind: k, Group: ID(w.Group), Msg: [16]byte(w.Msg), State: w.State}, nil
	}
	return nil, fmt.Errorf("%w: packet kind %d is unknown (known: 1 update, 2 removed, 3 text, 4 ack)", ErrMalformed, data[1])
}

func decodeUpdate(w signedWire) (*Packet, error) {
	var mw membershipWire
	if err := decodeStrict("membership", w.Body, &mw); err != nil {
		return nil, err
	}
	if mw.Version != wireVersion {
		return nil, fmt.Errorf("%w: membership version %d, this node reads %d (upgrade tern)", ErrMalformed, mw.Version, wireVersion)
	}
	if len(mw.Group) != IDSize || len(mw.OwnerHash) != 32 || len(mw.Key) != KeySize {
		return nil, fmt.Errorf("%w: membership with a %d-byte group id, %d-byte owner hash, %d-byte key", ErrMalformed, len(mw.Group), len(mw.OwnerHash), len(mw.Key))
	}
	m := &Membership{Group: ID(mw.Group), Epoch: mw.Epoch, Name: mw.Name, OwnerEd25519: ed25519.PublicKey(mw.OwnerEd),
		OwnerMLDSAHash: [32]byte(mw.OwnerHash), Key: [KeySize]byte(mw.Key), Issued: mw.Issued}
	for _, x := range mw.Members {
		if len(x.Address) != crypto.AddressSize {
			return nil, fmt.Errorf("%w: member address of %d bytes", ErrMalformed, len(x.Address))
		}
		m.Members = append(m.Members, Member{Address: crypto.Address(x.Address), Name: x.Name, Card: x.Card})
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if !ed25519.Verify(m.OwnerEd25519, append([]byte(domainMembership), w.Body...), w.Sig) {
		return nil, fmt.Errorf("%w: membership of group %s epoch %d is not signed by the owner it names", ErrForged, m.Group, m.Epoch)
	}
	return &Packet{Kind: KindUpdate, Group: m.Group, Epoch: m.Epoch, Membership: m}, nil
}

func decodeRemoved(w signedWire) (*Packet, error) {
	var rw removalWire
	if err := decodeStrict("removal", w.Body, &rw); err != nil {
		return nil, err
	}
	if rw.Version != wireVersion {
		return nil, fmt.Errorf("%w: removal version %d, this node reads %d (upgrade tern)", ErrMalformed, rw.Version, wireVersion)
	}
	if len(rw.Group) != IDSize || len(rw.Removed) != crypto.AddressSize || len(rw.OwnerHash) != 32 {
		return nil, fmt.Errorf("%w: removal with a %d-byte group id, %d-byte address, %d-byte owner hash", ErrMalformed, len(rw.Group), len(rw.Removed), len(rw.OwnerHash))
	}
	r := &Removal{Group: ID(rw.Group), Epoch: rw.Epoch, Removed: crypto.Address(rw.Removed), OwnerEd25519: ed25519.PublicKey(rw.OwnerEd),
		OwnerMLDSAHash: [32]byte(rw.OwnerHash), Issued: rw.Issued}
	if err := r.validate(); err != nil {
		return nil, err
	}
	if !ed25519.Verify(r.OwnerEd25519, append([]byte(domainRemoved), w.Body...), w.Sig) {
		return nil, fmt.Errorf("%w: removal notice of group %s is not signed by the owner it names", ErrForged, r.Group)
	}
	return &Packet{Kind: KindRemoved, Group: r.Group, Epoch: r.Epoch, Removal: r}, nil
}

// String names a kind for logs and errors.
func (k Kind) String() string {
	switch k {
	case KindUpdate:
		return "update"
	case KindRemoved:
		return "removed"
	case KindText:
		return "text"
	case KindAck:
		return "ack"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}
