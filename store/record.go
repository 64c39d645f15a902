package store

import (
	"encoding/binary"
	"fmt"

	"github.com/ternmesh/tern/bundle"
)

// Record encoding in the "bundles" bucket. The key is the 16-byte bundle ID;
// the value is a fixed header followed by the encoded bundle. Version 1 (73
// bytes of header) is written for a record without a copy budget, version 3
// (75 bytes) for one with a budget, so a store that never held a
// delay-tolerant copy stays readable by builds that predate versions 2 and
// 3. Version 2 (74 bytes, a one-byte budget of 1-255) is no longer written
// but still read, so a store written by an older build opens as it was:
//
//	offset size field
//	0      1    recordVersion (1, 2 or 3)
//	1      16   Dest
//	17     16   From      (zero = a local application)
//	33     16   NextHop   (zero = no route yet)
//	49     8    Received  int64 big-endian, unix ms
//	57     8    Expires   int64 big-endian, unix ms
//	65     8    Seq       uint64 big-endian, insertion order; also the suffix of
//	                      the record's keys in the next-hop and dest indexes
//	73     1    Copies    version 2 only: the copy budget (1-255)
//	73     2    Copies    version 3 only: the copy budget, uint16 big-endian
//	                      (1-65535)
//	73/74/75 ... Raw      the encoded bundle, opaque to the store
//
// A version 2 or 3 header with a zero budget is read as plain custody (no
// budget), the meaning 0 has everywhere else, and not refused: this build
// never writes one, there is no checksum that a refusal would stand on (a
// damaged budget byte of 0 looks like any other damaged byte), and refusing
// would make the whole bundle unreadable over a field whose zero value is
// well defined; version 2 has always been read so. It re-encodes as
// version 1. Builds that predate version 3 refuse a version 3 record,
// naming its version: once a node held a budget, go forward, not back.
const (
	recordVersion   = 1 // without a copy budget
	recordVersion2  = 2 // with a one-byte Copies; read, no longer written
	recordVersion3  = 3 // with a two-byte Copies
	offDest         = 1
	offFrom         = offDest + 16
	offNextHop      = offFrom + 16
	offReceived     = offNextHop + 16
	offExpires      = offReceived + 8
	offSeq          = offExpires + 8
	recordHeaderLen = offSeq + 8 // version 1; the shortest valid header
	offCopies       = recordHeaderLen
	record2Len      = offCopies + 1
	record3Len      = offCopies + 2
)

// versionLen is the header size of record version ver, 0 for a version
// this build does not read.
func versionLen(ver byte) int {
	switch ver {
	case recordVersion:
		return recordHeaderLen
	case recordVersion2:
		return record2Len
	case recordVersion3:
		return record3Len
	}
	return 0
}

// headerLen is the header size of a stored value, 0 when the value is too
// short or of an unknown version.
func headerLen(v []byte) int {
	if len(v) < recordHeaderLen {
		return 0
	}
	if hl := versionLen(v[0]); hl > 0 && len(v) >= hl {
		return hl
	}
	return 0
}

// encodeRecord returns the bbolt value for r with insertion sequence seq.
func encodeRecord(r *Record, seq uint64) []byte {
	hl := recordHeaderLen
	if r.Copies > 0 {
		hl = record3Len
	}
	b := make([]byte, hl+len(r.Raw))
	b[0] = recordVersion
	if r.Copies > 0 {
		b[0] = recordVersion3
		binary.BigEndian.PutUint16(b[offCopies:], r.Copies)
	}
	copy(b[offDest:], r.Dest[:])
	copy(b[offFrom:], r.From[:])
	copy(b[offNextHop:], r.NextHop[:])
	binary.BigEndian.PutUint64(b[offReceived:], uint64(r.Received))
	binary.BigEndian.PutUint64(b[offExpires:], uint64(r.Expires))
	binary.BigEndian.PutUint64(b[offSeq:], seq)
	copy(b[hl:], r.Raw)
	return b
}

// decodeRecord parses a value stored under key id. The result owns its
// memory: nothing in it aliases v, which may be bbolt-mapped memory.
func decodeRecord(id bundle.ID, v []byte) (Record, uint64, error) {
	if len(v) < recordHeaderLen {
		return Record{}, 0, fmt.Errorf("store: record %x is %d bytes, shorter than the %d-byte header: the database is damaged, restore it from a backup or delete it", id[:], len(v), recordHeaderLen)
	}
	hl := headerLen(v)
	if hl == 0 {
		if want := versionLen(v[0]); want > 0 {
			return Record{}, 0, fmt.Errorf("store: record %x is %d bytes, shorter than the %d-byte version %d header: the database is damaged, restore it from a backup or delete it", id[:], len(v), want, v[0])
		}
		return Record{}, 0, fmt.Errorf("store: record %x has encoding version %d, this build reads %d, %d and %d: run the tern version that wrote the store", id[:], v[0], recordVersion, recordVersion2, recordVersion3)
	}
	var r Record
	r.ID = id
	copy(r.Dest[:], v[offDest:])
	copy(r.From[:], v[offFrom:])
	copy(r.NextHop[:], v[offNextHop:])
	r.Received = int64(binary.BigEndian.Uint64(v[offReceived:]))
	r.Expires = int64(binary.BigEndian.Uint64(v[offExpires:]))
	seq := binary.BigEndian.Uint64(v[offSeq:])
	switch hl {
	case record2Len:
		r.Copies = uint16(v[offCopies])
	case record3Len:
		r.Copies = binary.BigEndian.Uint16(v[offCopies:])
	}
	r.Raw = append([]byte(nil), v[hl:]...)
	return r, seq, nil
}

// rawLen is the size of the encoded bundle in a stored value, which is what
// the quotas count.
func rawLen(v []byte) int64 {
	hl := headerLen(v)
	if hl == 0 {
		if len(v) < recordHeaderLen {
			return 0
		}
		hl = recordHeaderLen // unknown version: count it as version 1 did
	}
	return int64(len(v) - hl)
}

// Index keys: a 16-byte address followed by the 8-byte big-endian insertion
// sequence, so a cursor over one address visits records oldest first.
func indexKey(a bundle.Addr, seq uint64) []byte {
	k := make([]byte, 24)
	copy(k, a[:])
	binary.BigEndian.PutUint64(k[16:], seq)
	return k
}

// Expiry index keys: Expires as 8 big-endian bytes followed by the ID, so a
// cursor from the start visits the earliest expiry first. Expires is always
// positive (Put refuses anything else), so the unsigned order is the time order.
func expiryKey(expires int64, id bundle.ID) []byte {
	k := make([]byte, 24)
	binary.BigEndian.PutUint64(k, uint64(expires))
	copy(k[8:], id[:])
	return k
}

func u64(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putU64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// usage is a byte and bundle count, stored as 16 bytes: bytes then bundles,
// both big-endian uint64.
type usage struct {
	bytes   int64
	bundles int64
}

func decodeUsage(v []byte) usage {
	if len(v) < 16 {
		return usage{}
	}
	return usage{bytes: int64(binary.BigEndian.Uint64(v)), bundles: int64(binary.BigEndian.Uint64(v[8:]))}
}

func (u usage) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(u.bytes))
	binary.BigEndian.PutUint64(b[8:], uint64(u.bundles))
	return b
}
