package bundle

import (
	"fmt"
)

// Summary payloads: what a KindSummary bundle carries. Like custody acks
// and announces, summaries are hop-by-hop (HopLimit 0, never forwarded),
// travel in the clear and are decoded strictly. Layout in FORMAT.md.

// Limits of the summary payload.
const (
	// MaxSummaryIDs is the most IDs one summary may list in Held, and
	// separately in Delivered.
	MaxSummaryIDs = 4096
	// MaxSummaryGrants is the most copy grants one summary may carry.
	MaxSummaryGrants = 1024
	// MaxCopies is the largest copy budget a grant may carry: the router's
	// default budget for a new bundle, router/policy.DefaultCopies (4096;
	// a literal here, since bundle must not import the router), the most a
	// holder can have and so the most it can hand over.
	MaxCopies = 4096
)

// Summary flags.
const (
	// SummaryHeld says Held is the sender's list of what it holds (up to
	// MaxSummaryIDs; a node holding more lists its delay-tolerant copies
	// first). A receiver may then hand over copies of what the list lacks.
	// Without it Held must be empty: the summary only carries receipts
	// and grants, and says nothing about what the sender lacks.
	SummaryHeld uint8 = 1 << 0
	// SummaryEcho asks the receiver to answer at once with an empty
	// summary over the same link: a probe of a link that stopped
	// returning custody acks (the router's silent links), so that traffic
	// moves back to it as soon as it carries frames both ways again.
	SummaryEcho uint8 = 1 << 1
	// SummaryAired says the grants are for bundles the sender broadcast
	// on a shared radio channel (an air spray): every hearer that lacks
	// one keeps it with the granted copies as its own budget and sends
	// no custody ack (custody did not move; the sender keeps it). It
	// needs at least one grant, and nothing in Held or Delivered.
	SummaryAired uint8 = 1 << 2
	summaryFlags       = SummaryHeld | SummaryEcho | SummaryAired
)

var decSummary = mustDecMode(MaxSummaryIDs)

// Summary is the payload of a KindSummary bundle, exchanged between
// neighbours on contact for delay-tolerant forwarding: IDs first, bundles
// only for what the other side lacks. Encoded as the CBOR array
// [Flags, [Held...], [Delivered...], [[ID, Copies], ...]].
type Summary struct {
	_ struct{} `cbor:",toarray"`

	// Flags: SummaryHeld and SummaryEcho, or 0; other bits must be 0.
	Flags uint8
	// Held lists IDs of bundles the sender holds (only with SummaryHeld).
	Held []ID
	// Delivered lists IDs of bundles known delivered to their destination
	// (delivery receipts): a node holding a spare copy of one drops it.
	Delivered []ID
	// Grants are the copy budgets of the bundles the sender hands over
	// next on the same link; a bundle that arrives without a grant carries
	// no copy budget (plain custody).
	Grants []Grant
}

// Grant gives the receiver of a bundle a share of its copy budget.
type Grant struct {
	_ struct{} `cbor:",toarray"`

	ID ID
	// Copies is 1 to MaxCopies. CBOR encodes an unsigned int in its
	// shortest form, so a grant of up to 23 copies takes 1 byte, up to
	// 255 2 bytes and up to MaxCopies 3: a budget of at most 255 encodes
	// byte for byte as it did when Copies was one byte, and nodes built
	// before budgets above 255 read such grants as before. Such a node
	// refuses a summary with a larger grant as malformed (its Copies
	// overflows a byte).
	Copies uint16
}

// Marshal validates s and encodes it deterministically. Nil lists encode
// as empty arrays.
func (s *Summary) Marshal() ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	out := Summary{Flags: s.Flags, Held: s.Held, Delivered: s.Delivered, Grants: s.Grants}
	if out.Held == nil {
		out.Held = []ID{}
	}
	if out.Delivered == nil {
		out.Delivered = []ID{}
	}
	if out.Grants == nil {
		out.Grants = []Grant{}
	}
	b, err := encMode.Marshal(&out)
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding summary: %w", err)
	}
	return b, nil
}

// maxSummaryLen is the largest valid summary: array head, flags, two ID
// lists of 3-byte heads and 17-byte IDs, a grant list of 1 + 17 + 3 bytes
// per grant (a head of Copies up to MaxCopies is 3 bytes).
const maxSummaryLen = 1 + 1 + 2*(3+MaxSummaryIDs*17) + 3 + MaxSummaryGrants*(1+17+3)

// UnmarshalSummary decodes a summary payload with the same strictness as
// Unmarshal. Errors wrap ErrMalformed.
func UnmarshalSummary(data []byte) (*Summary, error) {
	if len(data) > maxSummaryLen {
		return nil, fmt.Errorf("%w: summary is %d bytes, larger than any valid one (%d)", ErrMalformed, len(data), maxSummaryLen)
	}
	s := new(Summary)
	if err := decSummary.Unmarshal(data, s); err != nil {
		return nil, wrapMalformed("summary", err)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	if n := s.encodedLen(); n != len(data) {
		return nil, fmt.Errorf("%w: summary encoding is %d bytes, the deterministic encoding is %d: some head is not in its shortest form", ErrMalformed, len(data), n)
	}
	return s, nil
}

func (s *Summary) encodedLen() int {
	n := 1 + headLen(uint64(s.Flags)) +
		headLen(uint64(len(s.Held))) + 17*len(s.Held) +
		headLen(uint64(len(s.Delivered))) + 17*len(s.Delivered) +
		headLen(uint64(len(s.Grants)))
	for _, g := range s.Grants {
		n += 1 + 17 + headLen(uint64(g.Copies))
	}
	return n
}

func (s *Summary) validate() error {
	switch {
	case s.Flags&^summaryFlags != 0:
		return fmt.Errorf("%w: summary Flags %#02x set unknown bits (known mask %#02x)", ErrMalformed, s.Flags, summaryFlags)
	case s.Flags&SummaryAired != 0 && (len(s.Grants) == 0 || len(s.Held)+len(s.Delivered) > 0 || s.Flags != SummaryAired):
		return fmt.Errorf("%w: an aired summary (flag %#02x) carries only grants, at least one, and no other flag", ErrMalformed, SummaryAired)
	case s.Flags&SummaryHeld == 0 && len(s.Held) > 0:
		return fmt.Errorf("%w: summary lists %d Held IDs without the SummaryHeld flag", ErrMalformed, len(s.Held))
	case len(s.Held) > MaxSummaryIDs:
		return fmt.Errorf("%w: summary lists %d Held IDs, over the maximum %d", ErrMalformed, len(s.Held), MaxSummaryIDs)
	case len(s.Delivered) > MaxSummaryIDs:
		return fmt.Errorf("%w: summary lists %d Delivered IDs, over the maximum %d; send several summaries", ErrMalformed, len(s.Delivered), MaxSummaryIDs)
	case len(s.Grants) > MaxSummaryGrants:
		return fmt.Errorf("%w: summary carries %d grants, over the maximum %d; send several summaries", ErrMalformed, len(s.Grants), MaxSummaryGrants)
	}
	if err := distinctIDs("Held", s.Held); err != nil {
		return err
	}
	if err := distinctIDs("Delivered", s.Delivered); err != nil {
		return err
	}
	seen := make(map[ID]struct{}, len(s.Grants))
	for i, g := range s.Grants {
		switch {
		case g.ID == (ID{}):
			return fmt.Errorf("%w: summary Grants[%d].ID is all zero", ErrMalformed, i)
		case g.Copies == 0:
			return fmt.Errorf("%w: summary Grants[%d].Copies is 0; grant at least one copy or none", ErrMalformed, i)
		case g.Copies > MaxCopies:
			return fmt.Errorf("%w: summary Grants[%d].Copies is %d, over the maximum %d", ErrMalformed, i, g.Copies, MaxCopies)
		}
		if _, dup := seen[g.ID]; dup {
			return fmt.Errorf("%w: summary Grants[%d].ID %s is listed twice", ErrMalformed, i, g.ID)
		}
		seen[g.ID] = struct{}{}
	}
	return nil
}

func distinctIDs(field string, ids []ID) error {
	seen := make(map[ID]struct{}, len(ids))
	for i, id := range ids {
		if id == (ID{}) {
			return fmt.Errorf("%w: summary %s[%d] is all zero", ErrMalformed, field, i)
		}
		if _, dup := seen[id]; dup {
			return fmt.Errorf("%w: summary %s[%d] %s is listed twice", ErrMalformed, field, i, id)
		}
		seen[id] = struct{}{}
	}
	return nil
}

// AiredNoteLifetime is the Lifetime (ms) of an aired grant note.
const AiredNoteLifetime = 60_000

// AiredNote returns the canonical bytes of the grant note that goes on a
// shared radio channel just ahead of a broadcast bundle id (an air spray):
// a hop-by-hop KindSummary bundle to no one in particular (Dest all zero),
// FlagDerivedID, Created 0, Age 0, Lifetime AiredNoteLifetime, HopLimit 0,
// payload Summary{Flags: SummaryAired, Grants: [{id, copies}]}. Every
// field follows from id and copies, so a radio link may carry just those
// (transports/radiolink FORMAT.md, frame type 7) and rebuild the note.
// copies is one hearer's air share, 1 to MaxCopies; the frame carries it
// in two bytes.
func AiredNote(id ID, copies uint16) ([]byte, error) {
	if copies == 0 || copies > MaxCopies {
		return nil, fmt.Errorf("%w: an aired grant of %d copies (want 1 to %d)", ErrMalformed, copies, MaxCopies)
	}
	p, err := (&Summary{Flags: SummaryAired, Grants: []Grant{{ID: id, Copies: copies}}}).Marshal()
	if err != nil {
		return nil, err
	}
	b := Bundle{Version: Version, Kind: KindSummary, Flags: FlagDerivedID, ID: DerivedID(Addr{}, p),
		Lifetime: AiredNoteLifetime, Payload: p}
	return b.Marshal()
}
