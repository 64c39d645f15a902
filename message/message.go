// Package message defines the application plaintext that travels inside a
// sealed data bundle: a chat text, a delivery or read receipt, or the data of
// an application (groups, files, calls).
// Relays never see it; package crypto seals the encoding produced here.
//
// The encoding is a CBOR array of four items in Core Deterministic Encoding,
// with a layout that depends on the type so that a short text costs only a
// few bytes of framing on a radio hop:
//
//	[Type, ID, Sent, Text]  for Text    (Text as a text string)
//	[Type, ID, Sent, Ref]   for Receipt and Read (Ref as a 16-byte byte string)
//	[Type, ID, Sent, Data]  for Group, File and Call (Data as a byte string:
//	                        the application's own encoding, 1 to MaxData bytes)
//
// ID is written as an empty byte string when it is zero: the message ID is
// then the ID of the bundle that carried the message, which saves 16 bytes
// on air. Sent 0 (unknown) costs one byte; a receiver then estimates the
// send time from the bundle's Age. A 40-byte text with ID and Sent costs 30
// bytes of framing; with neither, 1 (the compact form below).
//
// Compact text: the commonest message on a radio hop, a text with zero ID
// and Sent 0, is written as the single byte 0x01 followed by the UTF-8
// text, so it costs one byte of framing. A CBOR array of four items starts
// with 0x84, so the two forms cannot be confused; Marshal always picks the
// compact form when it applies, keeping the encoding deterministic.
package message

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Type says what a message is.
type Type uint8

// Message types.
const (
	// Text is a chat text written by a person.
	Text Type = 1
	// Receipt says the message Ref reached the recipient's device.
	Receipt Type = 2
	// Read says the recipient displayed the message Ref.
	Read Type = 3
	// Group carries a group channel's traffic (membership, group texts);
	// Data is package group's encoding.
	Group Type = 4
	// File carries a file transfer (offer, chunk, progress); Data is the
	// file application's encoding.
	File Type = 5
	// Call carries voice-call signalling (invite, answer, hang-up); Data is
	// the call application's encoding. The audio itself never travels in
	// bundles.
	Call Type = 6
)

// IsApp reports whether t carries an application's own Data.
func (t Type) IsApp() bool { return t == Group || t == File || t == Call }

// String names a type for logs and errors.
func (t Type) String() string {
	switch t {
	case Text:
		return "text"
	case Receipt:
		return "receipt"
	case Read:
		return "read"
	case Group:
		return "group"
	case File:
		return "file"
	case Call:
		return "call"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// MaxText is the longest Text in bytes (64 KiB).
const MaxText = 64 << 10

// MaxData is the longest Data of an application message (64 KiB).
const MaxData = 64 << 10

// maxEncoded is the longest valid encoding: array head, type, ID, Sent, and
// a 64 KiB text or data with its 5-byte head.
const maxEncoded = 1 + 1 + 17 + 9 + 5 + max(MaxText, MaxData)

// ErrMalformed wraps every decoding and validation failure; the wrapping
// error names the field and the problem.
var ErrMalformed = errors.New("message: malformed")

// Message is one application message.
type Message struct {
	Type Type
	// ID identifies this message for receipts. Zero means "the ID of the
	// bundle that carried it" and costs no bytes.
	ID [16]byte
	// Sent is the sender's clock at sending, milliseconds since the Unix
	// epoch; 0 when unknown or omitted to save bytes.
	Sent int64
	// Text is the chat text (Text only): 1 to MaxText bytes of UTF-8.
	Text string
	// Ref is the ID of the message a receipt acknowledges (receipts only).
	Ref [16]byte
	// Data is an application's payload (Group, File and Call only).
	Data []byte
}

// wire is the encoded layout; Body is the text string or the Ref byte string.
type wire struct {
	_ struct{} `cbor:",toarray"`

	Type uint8
	ID   []byte
	Sent int64
	Body cbor.RawMessage
}

var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("message: core deterministic encoding options rejected by cbor: %v", err))
	}
	return em
}

func mustDecMode() cbor.DecMode {
	var reject []func(*cbor.SimpleValueRegistry) error
	for sv := 0; sv < 256; sv++ {
		if sv < 24 || sv > 31 {
			reject = append(reject, cbor.WithRejectedSimpleValue(cbor.SimpleValue(sv)))
		}
	}
	simple, err := cbor.NewSimpleValueRegistryFromDefaults(reject...)
	if err != nil {
		panic(fmt.Sprintf("message: simple value registry: %v", err))
	}
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  16,
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		SimpleValues:      simple,
		NaN:               cbor.NaNDecodeForbidden,
		Inf:               cbor.InfDecodeForbidden,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("message: strict decoding options rejected by cbor: %v", err))
	}
	return dm
}

// Validate checks the rules Marshal and Unmarshal enforce; errors wrap
// ErrMalformed and name the field.
func (m *Message) Validate() error {
	if m.Sent < 0 {
		return fmt.Errorf("%w: Sent %d is before 1970; use 0 for unknown", ErrMalformed, m.Sent)
	}
	switch m.Type {
	case Text:
		switch {
		case m.Text == "":
			return fmt.Errorf("%w: Text is empty in a text message", ErrMalformed)
		case len(m.Text) > MaxText:
			return fmt.Errorf("%w: Text is %d bytes, over the %d-byte maximum; send it as a file", ErrMalformed, len(m.Text), MaxText)
		case !utf8.ValidString(m.Text):
			return fmt.Errorf("%w: Text is not valid UTF-8", ErrMalformed)
		case m.Ref != [16]byte{}:
			return fmt.Errorf("%w: Ref is set in a text message; only receipts reference a message", ErrMalformed)
		case m.Data != nil:
			return fmt.Errorf("%w: Data is set in a text message; only application messages carry data", ErrMalformed)
		}
	case Receipt, Read:
		switch {
		case m.Text != "":
			return fmt.Errorf("%w: Text is set in a %s message; receipts carry no text", ErrMalformed, m.Type)
		case m.Ref == [16]byte{}:
			return fmt.Errorf("%w: Ref is zero in a %s message; set it to the acknowledged message's ID", ErrMalformed, m.Type)
		case m.Data != nil:
			return fmt.Errorf("%w: Data is set in a %s message; receipts carry no data", ErrMalformed, m.Type)
		}
	case Group, File, Call:
		switch {
		case len(m.Data) == 0:
			return fmt.Errorf("%w: Data is empty in a %s message", ErrMalformed, m.Type)
		case len(m.Data) > MaxData:
			return fmt.Errorf("%w: Data is %d bytes in a %s message, over the %d-byte maximum", ErrMalformed, len(m.Data), m.Type, MaxData)
		case m.Text != "" || m.Ref != [16]byte{}:
			return fmt.Errorf("%w: a %s message carries only Data (Text and Ref must be empty)", ErrMalformed, m.Type)
		}
	default:
		return fmt.Errorf("%w: Type %d is unknown (known: 1 text, 2 receipt, 3 read, 4 group, 5 file, 6 call)", ErrMalformed, uint8(m.Type))
	}
	return nil
}

// Marshal validates m and encodes it deterministically.
func (m *Message) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m.encode()
}

// compactText is the first byte of a compact text (see the package doc).
const compactText = 0x01

func (m *Message) encode() ([]byte, error) {
	if m.Type == Text && m.ID == ([16]byte{}) && m.Sent == 0 {
		return append([]byte{compactText}, m.Text...), nil
	}
	w := wire{Type: uint8(m.Type), ID: []byte{}, Sent: m.Sent}
	if m.ID != [16]byte{} {
		w.ID = m.ID[:]
	}
	var err error
	switch {
	case m.Type == Text:
		w.Body, err = encMode.Marshal(m.Text)
	case m.Type.IsApp():
		w.Body, err = encMode.Marshal(m.Data)
	default:
		w.Body, err = encMode.Marshal(m.Ref[:])
	}
	if err != nil {
		return nil, fmt.Errorf("message: encoding %s body: %w", m.Type, err)
	}
	out, err := encMode.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("message: encoding %s: %w", m.Type, err)
	}
	return out, nil
}

// Unmarshal decodes and validates one message. It is strict: exactly one
// definite-length array in its deterministic encoding, no tags, no simple
// values, no trailing bytes, the body type matching the message type.
func Unmarshal(b []byte) (*Message, error) {
	if len(b) > maxEncoded {
		return nil, fmt.Errorf("%w: %d bytes is larger than any valid message (%d)", ErrMalformed, len(b), maxEncoded)
	}
	if len(b) > 0 && b[0] == compactText {
		m := &Message{Type: Text, Text: string(b[1:])}
		if err := m.Validate(); err != nil {
			return nil, err
		}
		return m, nil
	}
	var w wire
	if err := decMode.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	m := &Message{Type: Type(w.Type), Sent: w.Sent}
	switch len(w.ID) {
	case 0:
	case 16:
		if [16]byte(w.ID) == ([16]byte{}) {
			return nil, fmt.Errorf("%w: ID is 16 zero bytes; a zero ID is written as an empty byte string", ErrMalformed)
		}
		m.ID = [16]byte(w.ID)
	default:
		return nil, fmt.Errorf("%w: ID is %d bytes, want 0 or 16", ErrMalformed, len(w.ID))
	}
	if len(w.Body) == 0 {
		return nil, fmt.Errorf("%w: body is missing", ErrMalformed)
	}
	switch major := w.Body[0] >> 5; {
	case m.Type == Text && major == 3:
		if err := decMode.Unmarshal(w.Body, &m.Text); err != nil {
			return nil, fmt.Errorf("%w: Text: %w", ErrMalformed, err)
		}
	case m.Type.IsApp() && major == 2:
		if err := decMode.Unmarshal(w.Body, &m.Data); err != nil {
			return nil, fmt.Errorf("%w: Data: %w", ErrMalformed, err)
		}
	case m.Type.IsApp():
		return nil, fmt.Errorf("%w: Data: a %s message's fourth item must be a byte string (major type 2), got major type %d", ErrMalformed, m.Type, major)
	case (m.Type == Receipt || m.Type == Read) && major == 2:
		if len(w.Body) != 17 || w.Body[0] != 0x50 {
			return nil, fmt.Errorf("%w: Ref must be a 16-byte byte string, got %d encoded bytes", ErrMalformed, len(w.Body))
		}
		m.Ref = [16]byte(w.Body[1:])
	case m.Type == Text:
		return nil, fmt.Errorf("%w: Text: a text message's fourth item must be a text string (major type 3), got major type %d", ErrMalformed, major)
	case m.Type == Receipt || m.Type == Read:
		return nil, fmt.Errorf("%w: Ref: a %s message's fourth item must be a byte string (major type 2), got major type %d", ErrMalformed, m.Type, major)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	again, err := m.encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: encoding is not deterministic (%d bytes, canonical form %d): some head is not in its shortest form", ErrMalformed, len(b), len(again))
	}
	return m, nil
}
