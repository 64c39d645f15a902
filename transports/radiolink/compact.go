package radiolink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ternmesh/tern/bundle"
)

// CreatedEpoch is the origin of the compact Created field: 2026-01-01
// 00:00:00 UTC in Unix milliseconds. Created is sent as a varint of
// d = Created - CreatedEpoch, tagged in its low bit: 2*(d/1000)+1 when d is
// whole seconds (4 bytes until 2030; chat rounds Created to seconds for
// this), else 2*d (6 bytes).
const CreatedEpoch int64 = 1767225600000

// encodeCreated and decodeCreated implement the tagged Created varint.
func encodeCreated(created int64) uint64 {
	d := uint64(created - CreatedEpoch)
	if d%1000 == 0 {
		return d/1000*2 + 1
	}
	return d * 2
}

func decodeCreated(v uint64) int64 {
	if v&1 == 1 {
		return CreatedEpoch + int64(v>>1)*1000
	}
	return CreatedEpoch + int64(v>>1)
}

// Time units of the compact age/lifetime fields, indexed by the 2-bit code.
var units = [4]uint64{1, 1000, 60_000, 3_600_000}

// errExpand is wrapped by expand errors that the sender can cure by sending
// the full form (an unknown or ambiguous short destination).
var errExpand = errors.New("cannot expand short destination address")

// errMalformed is wrapped by every decode error of a frame or compact body.
var errMalformed = errors.New("malformed radio frame")

// addrBook resolves short address prefixes against the addresses known on
// one radio (own, neighbours from hellos, destinations of bundles seen).
type addrBook interface {
	// resolve returns the one known address starting with prefix; ok is
	// false when none or several match.
	resolve(prefix []byte) (bundle.Addr, bool)
	// shortest returns the shortest length code (1..3: 2, 4, 16 bytes) at
	// which a is unambiguous among the known addresses, and whether a is
	// known at all (unknown addresses always go in full).
	shortest(a bundle.Addr) int
}

// destLens are the byte lengths of destination codes 1..3 (0: elided, the
// destination is the frame's next hop).
var destLens = [4]int{0, 2, 4, 16}

// compactBundle encodes canonical bundle bytes in the compact radio form
// (FORMAT.md). nextHop is the link destination of the frame, book the
// sender's table. It returns ok false when the bundle does not fit the
// compact rules; the caller then sends the canonical bytes. The returned
// canonical bytes are what the receiver will rebuild: equal to raw except
// that Age may be rounded up to the chosen unit.
func compactBundle(raw []byte, nextHop bundle.Addr, book addrBook, fullDest bool) (body, canon []byte, ok bool) {
	b, err := bundle.Unmarshal(raw)
	if err != nil || b.Version != bundle.Version || b.HopLimit > 63 {
		return nil, nil, false
	}
	if b.Created != 0 && b.Created < CreatedEpoch {
		return nil, nil, false
	}
	// The compact header has no bit for FlagBulk: a bulk bundle (which the
	// router keeps off radio anyway) goes as a raw frame, flag included.
	if b.Flags&bundle.FlagBulk != 0 {
		return nil, nil, false
	}
	// The largest unit that divides Lifetime exactly and keeps the rounded
	// Age below Lifetime (or equal when it already was).
	unit := -1
	for u := 3; u >= 0; u-- {
		if b.Lifetime%units[u] != 0 {
			continue
		}
		age := ceilDiv(b.Age, units[u]) * units[u]
		if age >= b.Lifetime && b.Age < b.Lifetime {
			continue
		}
		unit = u
		break
	}
	if unit < 0 {
		return nil, nil, false
	}
	c0 := byte(b.Kind)<<6 | byte(unit)
	if b.Flags&bundle.FlagClockUnsynced != 0 {
		c0 |= 1 << 5
	}
	if b.Flags&bundle.FlagOverAirClear != 0 {
		c0 |= 1 << 4
	}
	derived := b.Flags&bundle.FlagDerivedID != 0
	if derived {
		c0 |= 1 << 3
	}
	if b.Created != 0 {
		c0 |= 1 << 2
	}
	dcode := 3
	if b.Dest == nextHop {
		dcode = 0
	} else if !fullDest && book != nil {
		dcode = book.shortest(b.Dest)
	}
	out := make([]byte, 0, len(raw))
	out = append(out, c0, byte(dcode)<<6|b.HopLimit)
	out = append(out, b.Dest[:destLens[dcode]]...)
	if !derived {
		out = append(out, b.ID[:]...)
	}
	out = binary.AppendUvarint(out, ceilDiv(b.Age, units[unit]))
	out = binary.AppendUvarint(out, b.Lifetime/units[unit])
	if b.Created != 0 {
		out = binary.AppendUvarint(out, encodeCreated(b.Created))
	}
	switch b.Kind {
	case bundle.KindCustodyAck:
		ids, err := bundle.UnmarshalCustodyAck(b.Payload)
		if err != nil {
			return nil, nil, false
		}
		for _, id := range ids {
			out = append(out, id[:]...)
		}
	case bundle.KindAnnounce:
		a, err := bundle.UnmarshalAnnounce(b.Payload)
		if err != nil {
			return nil, nil, false
		}
		out = binary.AppendUvarint(out, a.Seq)
		for _, r := range a.Routes {
			out = append(out, r.Dest[:]...)
			out = append(out, r.Hops)
		}
	default:
		out = append(out, b.Payload...)
	}
	// Safety net: the compact form must expand to exactly the canonical
	// bytes of the (age-rounded) bundle, or it is not used.
	nb := *b
	nb.Age = ceilDiv(b.Age, units[unit]) * units[unit]
	canon, err = nb.Marshal()
	if err != nil {
		return nil, nil, false
	}
	got, err := expandBundle(out, nextHop, exactBook{b.Dest})
	if err != nil || !bytes.Equal(got, canon) {
		return nil, nil, false
	}
	return out, canon, true
}

// exactBook knows one address; used for the encoder's self-check.
type exactBook struct{ a bundle.Addr }

func (e exactBook) resolve(p []byte) (bundle.Addr, bool) { return e.a, bytes.HasPrefix(e.a[:], p) }
func (e exactBook) shortest(bundle.Addr) int             { return 3 }

// expandBundle rebuilds canonical bundle bytes from a compact body. nextHop
// is the frame's link destination (the receiver itself). Errors wrap
// errExpand when the short destination cannot be resolved, else
// errMalformed.
func expandBundle(body []byte, nextHop bundle.Addr, book addrBook) ([]byte, error) {
	if len(body) < 2 {
		return nil, fmt.Errorf("%w: compact bundle of %d bytes, need at least 2", errMalformed, len(body))
	}
	c0, c1 := body[0], body[1]
	p := body[2:]
	b := bundle.Bundle{Version: bundle.Version, Kind: bundle.Kind(c0 >> 6), HopLimit: c1 & 0x3f}
	unit := units[c0&3]
	if c0&(1<<5) != 0 {
		b.Flags |= bundle.FlagClockUnsynced
	}
	if c0&(1<<4) != 0 {
		b.Flags |= bundle.FlagOverAirClear
	}
	derived := c0&(1<<3) != 0
	if derived {
		b.Flags |= bundle.FlagDerivedID
	}
	dlen := destLens[c1>>6]
	if len(p) < dlen {
		return nil, fmt.Errorf("%w: destination truncated", errMalformed)
	}
	switch {
	case dlen == 0:
		b.Dest = nextHop
	case dlen == 16:
		copy(b.Dest[:], p)
	default:
		if book == nil {
			return nil, fmt.Errorf("%w: %x", errExpand, p[:dlen])
		}
		a, ok := book.resolve(p[:dlen])
		if !ok {
			return nil, fmt.Errorf("%w: %x is unknown or ambiguous here", errExpand, p[:dlen])
		}
		b.Dest = a
	}
	p = p[dlen:]
	if !derived {
		if len(p) < 16 {
			return nil, fmt.Errorf("%w: ID truncated", errMalformed)
		}
		copy(b.ID[:], p)
		p = p[16:]
	}
	var vals [3]uint64
	n := 2
	if c0&(1<<2) != 0 {
		n = 3
	}
	for i := 0; i < n; i++ {
		v, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad varint", errMalformed)
		}
		vals[i], p = v, p[k:]
	}
	if vals[0] > (1<<63)/unit || vals[1] > (1<<63)/unit || vals[2] > 1<<52 {
		return nil, fmt.Errorf("%w: time out of range", errMalformed)
	}
	b.Age, b.Lifetime = vals[0]*unit, vals[1]*unit
	if n == 3 {
		b.Created = decodeCreated(vals[2])
	}
	switch b.Kind {
	case bundle.KindCustodyAck:
		if len(p) == 0 || len(p)%16 != 0 {
			return nil, fmt.Errorf("%w: custody ack of %d bytes", errMalformed, len(p))
		}
		ids := make([]bundle.ID, len(p)/16)
		for i := range ids {
			copy(ids[i][:], p[16*i:])
		}
		pl, err := bundle.MarshalCustodyAck(ids)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errMalformed, err)
		}
		b.Payload = pl
	case bundle.KindAnnounce:
		seq, k := binary.Uvarint(p)
		if k <= 0 || (len(p)-k)%17 != 0 {
			return nil, fmt.Errorf("%w: announce", errMalformed)
		}
		p = p[k:]
		a := bundle.Announce{Seq: seq, Routes: make([]bundle.Route, len(p)/17)}
		for i := range a.Routes {
			copy(a.Routes[i].Dest[:], p[17*i:])
			a.Routes[i].Hops = p[17*i+16]
		}
		pl, err := a.Marshal()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errMalformed, err)
		}
		b.Payload = pl
	default:
		b.Payload = append([]byte(nil), p...)
	}
	if derived {
		b.ID = bundle.DerivedID(b.Dest, b.Payload)
	}
	raw, err := b.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return raw, nil
}

func ceilDiv(a, b uint64) uint64 {
	if a == 0 {
		return 0
	}
	return (a-1)/b + 1
}
