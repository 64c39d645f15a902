package call

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// ID names one call. It is random, chosen by the caller.
type ID [16]byte

// String is the ID in hex, as the API shows it.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID reads an ID written by String.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("call id %q is not 32 hex characters", s)
	}
	copy(id[:], b)
	return id, nil
}

// tag is the part of the ID every media frame carries in the clear, so the
// receiver finds the call without trying keys.
func (id ID) tag() [8]byte { return [8]byte(id[:8]) }

// Kind says what a signal does.
type Kind uint8

// Signal kinds.
const (
	KindInvite  Kind = 1 // the caller rings: call ID, offered codec, the caller's media key
	KindAccept  Kind = 2 // the callee answers: the callee's media key
	KindDecline Kind = 3 // the callee refuses
	KindHangup  Kind = 4 // either side ends the call, or the caller gives up (Reason says why)
	KindBusy    Kind = 5 // the callee is in another call
)

func (k Kind) String() string {
	switch k {
	case KindInvite:
		return "invite"
	case KindAccept:
		return "accept"
	case KindDecline:
		return "decline"
	case KindHangup:
		return "hang-up"
	case KindBusy:
		return "busy"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Reason says why a hang-up was sent.
type Reason uint8

// Hang-up reasons.
const (
	ReasonHungUp      Reason = 0 // a person ended the call (or cancelled it while it rang)
	ReasonNoAnswer    Reason = 1 // the caller stopped ringing after RingTimeout
	ReasonUnreachable Reason = 2 // no internet or LAN path: the call never rang (a missed-call notice)
	ReasonLost        Reason = 3 // no audio arrived for MediaTimeout: the connection was lost
	maxReason                = ReasonLost
)

// Codec is the only codec offered: Opus at 48 kHz, mono, 20 ms frames,
// encoded and decoded by the browser.
const Codec = "opus"

// KeySize is the size of a media key.
const KeySize = 32

// Signal is one call-signalling message: the Data of a message.Call, sealed
// end to end by the pair's session and carried as a bundle, so a missed
// call is still learnt of after a long outage.
//
// Encoding (bytes):
//
//	0   1   version: 1
//	1   1   kind (1 invite, 2 accept, 3 decline, 4 hang-up, 5 busy)
//	2   16  call ID
//	then, by kind:
//	invite   32 media key | 1 codec length n (1..32) | n codec name (printable ASCII)
//	accept   32 media key
//	hang-up  1 reason (0 hung up, 1 no answer, 2 unreachable, 3 connection lost)
//	decline, busy: nothing
//
// Nothing may follow. The media key is the one its sender encrypts its own
// audio with (see the package doc); it never leaves the daemons.
type Signal struct {
	Kind   Kind
	Call   ID
	Codec  string        // invite only
	Key    [KeySize]byte // invite and accept
	Reason Reason        // hang-up only
}

const signalVersion = 1

// ErrMalformed wraps every decoding failure of signals and media frames.
var ErrMalformed = errors.New("call: malformed")

// Marshal encodes s, checking what Unmarshal checks.
func (s *Signal) Marshal() ([]byte, error) {
	out := make([]byte, 0, 2+16+KeySize+1+len(s.Codec))
	out = append(out, signalVersion, byte(s.Kind))
	out = append(out, s.Call[:]...)
	switch s.Kind {
	case KindInvite:
		if err := checkCodec(s.Codec); err != nil {
			return nil, err
		}
		out = append(out, s.Key[:]...)
		out = append(out, byte(len(s.Codec)))
		out = append(out, s.Codec...)
	case KindAccept:
		out = append(out, s.Key[:]...)
	case KindHangup:
		if s.Reason > maxReason {
			return nil, fmt.Errorf("%w: hang-up reason %d is unknown", ErrMalformed, s.Reason)
		}
		out = append(out, byte(s.Reason))
	case KindDecline, KindBusy:
	default:
		return nil, fmt.Errorf("%w: signal kind %d is unknown", ErrMalformed, s.Kind)
	}
	return out, nil
}

func checkCodec(c string) error {
	if len(c) == 0 || len(c) > 32 {
		return fmt.Errorf("%w: codec name of %d bytes (want 1 to 32)", ErrMalformed, len(c))
	}
	for i := 0; i < len(c); i++ {
		if c[i] < 0x21 || c[i] > 0x7e {
			return fmt.Errorf("%w: codec name has byte 0x%02x; only printable ASCII is allowed", ErrMalformed, c[i])
		}
	}
	return nil
}

// UnmarshalSignal decodes one signal strictly: known version and kind, the
// exact length for the kind, nothing after it. It never panics.
func UnmarshalSignal(b []byte) (*Signal, error) {
	if len(b) < 18 {
		return nil, fmt.Errorf("%w: signal of %d bytes is shorter than its 18-byte head", ErrMalformed, len(b))
	}
	if b[0] != signalVersion {
		return nil, fmt.Errorf("%w: signal version %d (this node speaks version %d: update tern)", ErrMalformed, b[0], signalVersion)
	}
	s := &Signal{Kind: Kind(b[1]), Call: ID(b[2:18])}
	rest := b[18:]
	want := 0
	switch s.Kind {
	case KindInvite:
		if len(rest) < KeySize+1 {
			return nil, fmt.Errorf("%w: invite of %d bytes is too short for its key and codec", ErrMalformed, len(b))
		}
		copy(s.Key[:], rest)
		n := int(rest[KeySize])
		want = KeySize + 1 + n
		if len(rest) == want {
			s.Codec = string(rest[KeySize+1:])
			if err := checkCodec(s.Codec); err != nil {
				return nil, err
			}
		}
	case KindAccept:
		want = KeySize
		if len(rest) == want {
			copy(s.Key[:], rest)
		}
	case KindHangup:
		want = 1
		if len(rest) == want {
			s.Reason = Reason(rest[0])
			if s.Reason > maxReason {
				return nil, fmt.Errorf("%w: hang-up reason %d is unknown", ErrMalformed, s.Reason)
			}
		}
	case KindDecline, KindBusy:
	default:
		return nil, fmt.Errorf("%w: signal kind %d is unknown (known: 1 invite, 2 accept, 3 decline, 4 hang-up, 5 busy)", ErrMalformed, s.Kind)
	}
	if len(rest) != want {
		return nil, fmt.Errorf("%w: %s signal is %d bytes, want %d", ErrMalformed, s.Kind, len(b), 18+want)
	}
	if s.Call == (ID{}) {
		return nil, fmt.Errorf("%w: call ID is zero", ErrMalformed)
	}
	return s, nil
}
