package radiolink

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/ternmesh/tern/bundle"
)

// Frame types (high nibble of the first byte).
const (
	ftHello   = 0 // broadcast: full 16-byte source address
	ftCompact = 1 // one compact bundle
	ftRaw     = 2 // one opaque frame as the router sent it (fallback)
	ftFrag    = 3 // one fragment of a message
	ftFragAck = 4 // selective acknowledgement of a fragmented message
	ftNak     = 5 // "cannot expand": resend that message in full form
	ftBye     = 6 // the link to this neighbour was closed
	ftAir     = 7 // broadcast: a bundle and its copy grant for every hearer (air spray)
)

// Flag bits (low two bits of the first byte), per type.
const (
	flHelloRequest = 1 // hello: please answer with your own hello
	flFragCompact  = 1 // fragment: the reassembled body is a compact bundle
	flAckComplete  = 1 // frag ack: every fragment arrived (no bitmap follows)
	flAirCompact   = 1 // aired bundle: the body is a compact bundle (else the raw bundle)
)

// linkLens are the byte lengths of the link address codes 0..3.
var linkLens = [4]int{2, 4, 8, 16}

// header is the decoded link-layer header of a frame.
type header struct {
	typ   int
	flags byte
	lcode int    // link address length code
	src   []byte // short or full source address
	dst   []byte // short or full next hop; nil for hello and aired bundles
}

// frame is a decoded frame: header plus type-specific fields.
type frame struct {
	header
	seq    uint16 // frag, frag ack
	count  int    // frag, frag ack: number of fragments
	index  int    // frag
	bitmap []byte // frag ack (nil when complete)
	hash   uint32 // nak
	copies uint16 // aired bundle: the copy budget each hearer keeps
	body   []byte // compact, raw, frag data, aired bundle
}

// Limits on decoded values, whatever the frame claims.
const (
	maxFragCount = 4096
)

// appendHeader writes the first byte and the link addresses.
func appendHeader(out []byte, typ int, flags byte, lcode int, src, dst bundle.Addr) []byte {
	out = append(out, byte(typ)<<4|byte(lcode)<<2|flags&3)
	out = append(out, src[:linkLens[lcode]]...)
	if typ != ftHello && typ != ftAir { // broadcasts: no next hop
		out = append(out, dst[:linkLens[lcode]]...)
	}
	return out
}

func encodeHello(self bundle.Addr, request bool) []byte {
	var fl byte
	if request {
		fl = flHelloRequest
	}
	return appendHeader(nil, ftHello, fl, 3, self, bundle.Addr{})
}

func encodeFrag(lcode int, src, dst bundle.Addr, compact bool, seq uint16, index, count int, data []byte) []byte {
	var fl byte
	if compact {
		fl = flFragCompact
	}
	out := appendHeader(make([]byte, 0, 16+len(data)), ftFrag, fl, lcode, src, dst)
	out = binary.BigEndian.AppendUint16(out, seq)
	out = binary.AppendUvarint(out, uint64(count))
	out = binary.AppendUvarint(out, uint64(index))
	return append(out, data...)
}

// fragHeaderLen is the worst-case header of a fragment with link code lcode.
func fragHeaderLen(lcode int) int { return 1 + 2*linkLens[lcode] + 2 + 2 + 2 }

func encodeFragAck(lcode int, src, dst bundle.Addr, seq uint16, count int, bitmap []byte) []byte {
	var fl byte
	if bitmap == nil {
		fl = flAckComplete
	}
	out := appendHeader(nil, ftFragAck, fl, lcode, src, dst)
	out = binary.BigEndian.AppendUint16(out, seq)
	out = binary.AppendUvarint(out, uint64(count))
	return append(out, bitmap...)
}

func encodeNak(lcode int, src, dst bundle.Addr, h uint32) []byte {
	out := appendHeader(nil, ftNak, 0, lcode, src, dst)
	return binary.BigEndian.AppendUint32(out, h)
}

// encodeAir builds an aired-bundle broadcast: header without next hop,
// the copies (two bytes, big-endian), then the compact (compact) or raw
// bundle.
func encodeAir(lcode int, src bundle.Addr, copies uint16, compact bool, body []byte) []byte {
	var fl byte
	if compact {
		fl = flAirCompact
	}
	out := appendHeader(make([]byte, 0, 3+linkLens[lcode]+len(body)), ftAir, fl, lcode, src, bundle.Addr{})
	return append(binary.BigEndian.AppendUint16(out, copies), body...)
}

func encodeBye(lcode int, src, dst bundle.Addr) []byte {
	return appendHeader(nil, ftBye, 0, lcode, src, dst)
}

func encodeSingle(typ int, lcode int, src, dst bundle.Addr, body []byte) []byte {
	out := appendHeader(make([]byte, 0, 1+2*linkLens[lcode]+len(body)), typ, 0, lcode, src, dst)
	return append(out, body...)
}

// bodyHash names a compact body in a NAK.
func bodyHash(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// decodeFrame parses one air frame. It never panics and copies nothing
// it does not need to: body slices alias data.
func decodeFrame(data []byte) (frame, error) {
	var f frame
	if len(data) == 0 {
		return f, fmt.Errorf("%w: empty frame", errMalformed)
	}
	f.typ = int(data[0] >> 4)
	f.lcode = int(data[0]>>2) & 3
	f.flags = data[0] & 3
	p := data[1:]
	n := linkLens[f.lcode]
	if f.typ > ftAir {
		return f, fmt.Errorf("%w: unknown frame type %d", errMalformed, f.typ)
	}
	if f.typ == ftHello {
		if f.lcode != 3 || len(p) != 16 {
			return f, fmt.Errorf("%w: hello must carry exactly a 16-byte address", errMalformed)
		}
		f.src = p
		return f, nil
	}
	if f.typ == ftAir {
		if len(p) < n+3 {
			return f, fmt.Errorf("%w: aired bundle without a source, a 2-byte copy count and a body", errMalformed)
		}
		f.src, f.copies, f.body = p[:n], binary.BigEndian.Uint16(p[n:]), p[n+2:]
		if f.copies == 0 || f.copies > bundle.MaxCopies {
			return f, fmt.Errorf("%w: aired bundle granting %d copies (want 1 to %d)", errMalformed, f.copies, bundle.MaxCopies)
		}
		return f, nil
	}
	if len(p) < 2*n {
		return f, fmt.Errorf("%w: link addresses truncated", errMalformed)
	}
	f.src, f.dst, p = p[:n], p[n:2*n], p[2*n:]
	switch f.typ {
	case ftCompact, ftRaw:
		f.body = p
	case ftBye:
		if len(p) != 0 {
			return f, fmt.Errorf("%w: bye with a body", errMalformed)
		}
	case ftNak:
		if len(p) != 4 {
			return f, fmt.Errorf("%w: nak of %d bytes", errMalformed, len(p))
		}
		f.hash = binary.BigEndian.Uint32(p)
	case ftFrag, ftFragAck:
		if len(p) < 3 {
			return f, fmt.Errorf("%w: fragment header truncated", errMalformed)
		}
		f.seq = binary.BigEndian.Uint16(p)
		p = p[2:]
		c, k := binary.Uvarint(p)
		if k <= 0 || c == 0 || c > maxFragCount {
			return f, fmt.Errorf("%w: fragment count", errMalformed)
		}
		f.count, p = int(c), p[k:]
		if f.typ == ftFrag {
			i, k := binary.Uvarint(p)
			if k <= 0 || i >= c {
				return f, fmt.Errorf("%w: fragment index", errMalformed)
			}
			f.index, f.body = int(i), p[k:]
		} else if f.flags&flAckComplete == 0 {
			if len(p) != (f.count+7)/8 {
				return f, fmt.Errorf("%w: ack bitmap of %d bytes for %d fragments", errMalformed, len(p), f.count)
			}
			f.bitmap = p
		} else if len(p) != 0 {
			return f, fmt.Errorf("%w: trailing bytes after complete ack", errMalformed)
		}
	}
	return f, nil
}
