package bundle

import (
	"errors"
	"fmt"
)

// Control payloads: what a KindCustodyAck or KindAnnounce bundle carries.
// Both kinds are hop-by-hop (HopLimit 0, never forwarded), travel in the
// clear, and are decoded as strictly as the bundle itself.

// Limits of the control payloads.
const (
	// MaxCustodyAckIDs is the most IDs one custody ack may list.
	MaxCustodyAckIDs = 1024
	// MaxAnnounceRoutes is the most routes one announce may carry.
	MaxAnnounceRoutes = 4096
)

var (
	decCustodyAck = mustDecMode(MaxCustodyAckIDs)
	decAnnounce   = mustDecMode(MaxAnnounceRoutes)
)

// MarshalCustodyAck encodes the payload of a KindCustodyAck bundle: the IDs
// the sending node now holds on disk, as a CBOR array of 16-byte byte
// strings. ids must hold 1 to MaxCustodyAckIDs distinct, non-zero IDs.
func MarshalCustodyAck(ids []ID) ([]byte, error) {
	if err := validateCustodyAck(ids); err != nil {
		return nil, err
	}
	out, err := encMode.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding custody ack: %w", err)
	}
	return out, nil
}

// UnmarshalCustodyAck decodes a custody-ack payload with the same strictness
// as Unmarshal. Errors wrap ErrMalformed.
func UnmarshalCustodyAck(data []byte) ([]ID, error) {
	// The largest valid ack: array head (3) + 1024 * 17.
	if max := 3 + MaxCustodyAckIDs*17; len(data) > max {
		return nil, fmt.Errorf("%w: custody ack is %d bytes, larger than any valid one (%d)", ErrMalformed, len(data), max)
	}
	var ids []ID
	if err := decCustodyAck.Unmarshal(data, &ids); err != nil {
		return nil, wrapMalformed("custody ack", err)
	}
	if err := validateCustodyAck(ids); err != nil {
		return nil, err
	}
	if n := headLen(uint64(len(ids))) + 17*len(ids); n != len(data) {
		return nil, fmt.Errorf("%w: custody ack encoding is %d bytes, the deterministic encoding is %d: a length head is not in its shortest form", ErrMalformed, len(data), n)
	}
	return ids, nil
}

func validateCustodyAck(ids []ID) error {
	switch {
	case len(ids) == 0:
		return fmt.Errorf("%w: custody ack lists no IDs; send none instead", ErrMalformed)
	case len(ids) > MaxCustodyAckIDs:
		return fmt.Errorf("%w: custody ack lists %d IDs, over the maximum %d; split it into several acks", ErrMalformed, len(ids), MaxCustodyAckIDs)
	}
	seen := make(map[ID]struct{}, len(ids))
	for i, id := range ids {
		if id == (ID{}) {
			return fmt.Errorf("%w: custody ack IDs[%d] is all zero", ErrMalformed, i)
		}
		if _, dup := seen[id]; dup {
			return fmt.Errorf("%w: custody ack IDs[%d] %s is listed twice", ErrMalformed, i, id)
		}
		seen[id] = struct{}{}
	}
	return nil
}

// Announce is the payload of a KindAnnounce bundle: the destinations the
// sending neighbour can reach and how far away they are. Encoded as the CBOR
// array [Seq, [[Dest, Hops], ...]].
type Announce struct {
	_ struct{} `cbor:",toarray"`

	// Seq increases with every announce a node sends (it starts again at 1
	// when the node restarts). A receiver takes every announce; a Seq that
	// goes back tells it the sender restarted and needs a whole announce
	// at once (router/pace.go).
	Seq uint64
	// Routes lists at most MaxAnnounceRoutes distinct destinations; it may
	// be empty (the neighbour only says it is there).
	Routes []Route
}

// Route is one reachable destination in an announce.
type Route struct {
	_ struct{} `cbor:",toarray"`

	Dest Addr
	// Hops is the announcer's distance to Dest: 0 for itself, at most
	// MaxHopLimit.
	Hops uint8
}

// Marshal validates a and encodes it deterministically.
func (a *Announce) Marshal() ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	routes := a.Routes
	if routes == nil {
		routes = []Route{} // an empty array, never null
	}
	out, err := encMode.Marshal(&Announce{Seq: a.Seq, Routes: routes})
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding announce: %w", err)
	}
	return out, nil
}

// UnmarshalAnnounce decodes an announce payload with the same strictness as
// Unmarshal. Errors wrap ErrMalformed.
func UnmarshalAnnounce(data []byte) (*Announce, error) {
	// The largest valid announce: array head, 9-byte Seq, 3-byte array head,
	// 4096 routes of 1 + 17 + 2 bytes.
	if max := 1 + 9 + 3 + MaxAnnounceRoutes*20; len(data) > max {
		return nil, fmt.Errorf("%w: announce is %d bytes, larger than any valid one (%d)", ErrMalformed, len(data), max)
	}
	a := new(Announce)
	if err := decAnnounce.Unmarshal(data, a); err != nil {
		return nil, wrapMalformed("announce", err)
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	if n := a.encodedLen(); n != len(data) {
		return nil, fmt.Errorf("%w: announce encoding is %d bytes, the deterministic encoding is %d: some head is not in its shortest form", ErrMalformed, len(data), n)
	}
	return a, nil
}

func (a *Announce) encodedLen() int {
	n := 1 + headLen(a.Seq) + headLen(uint64(len(a.Routes)))
	for _, r := range a.Routes {
		n += 1 + 17 + headLen(uint64(r.Hops))
	}
	return n
}

func (a *Announce) validate() error {
	if len(a.Routes) > MaxAnnounceRoutes {
		return fmt.Errorf("%w: announce carries %d routes, over the maximum %d; send several announces", ErrMalformed, len(a.Routes), MaxAnnounceRoutes)
	}
	seen := make(map[Addr]struct{}, len(a.Routes))
	for i, r := range a.Routes {
		if r.Hops > MaxHopLimit {
			return fmt.Errorf("%w: announce Routes[%d].Hops %d exceeds the maximum %d", ErrMalformed, i, r.Hops, MaxHopLimit)
		}
		if _, dup := seen[r.Dest]; dup {
			return fmt.Errorf("%w: announce Routes[%d].Dest %s is listed twice", ErrMalformed, i, r.Dest)
		}
		seen[r.Dest] = struct{}{}
	}
	return nil
}

func wrapMalformed(what string, err error) error {
	if errors.Is(err, ErrMalformed) {
		return err
	}
	if what == "" {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
}
