package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kinds of file messages: the first byte of a message.File's Data
// (FORMAT.md).
const (
	kindOffer  = 0x01
	kindChunk  = 0x02
	kindAck    = 0x03
	kindCancel = 0x04
)

// Ack statuses.
const (
	AckReceiving = 0 // ranges say which chunks the receiver holds
	AckComplete  = 1 // every chunk held, file assembled and its SHA-256 checked
	AckRefused   = 2 // the receiver will not take the file; Reason says why
)

// Limits of the wire format.
const (
	// MaxChunk is the largest chunk a message may carry: with its 21 bytes
	// of framing it stays under message.MaxData (64 KiB).
	MaxChunk = 60 << 10
	// MaxNameLen is the longest file name, in bytes of UTF-8.
	MaxNameLen = 255
	// MaxMimeLen is the longest media type.
	MaxMimeLen = 127
	// MaxRanges bounds the ranges in one ack.
	MaxRanges = 4096
	// MaxReason bounds the text of a refusal or cancellation.
	MaxReason = 1024
	// offerFixed is an offer's length without name and media type.
	offerFixed = 1 + 16 + 8 + 32 + 4 + 4 + 1 + 1
	// tagGroup starts an offer's group extension: tag, group ID (16),
	// epoch (8).
	tagGroup = 0x01
	groupExt = 1 + 16 + 8
)

// ErrMalformed wraps every decoding failure; the wrapping error names the
// field and the problem.
var ErrMalformed = errors.New("files: malformed message")

// Offer announces a file: the receiver answers with an Ack.
type Offer struct {
	ID        [16]byte
	Size      uint64
	SHA256    [32]byte
	ChunkSize uint32
	Chunks    uint32
	Name      string
	Mime      string
	// Group, if not zero, is the group the file is sent to (one offer to
	// each member), and GroupEpoch the epoch of its membership the sender
	// held (at least 1). The receiver believes the label only from a
	// current member (see Groups).
	Group      [16]byte
	GroupEpoch uint64
}

// Chunk carries bytes Index*ChunkSize .. of the file.
type Chunk struct {
	ID    [16]byte
	Index uint32
	Data  []byte
}

// Ack reports the receiver's progress (or its refusal) to the sender.
type Ack struct {
	ID     [16]byte
	Status uint8
	Have   Set    // AckReceiving: chunks held (AckComplete: empty)
	Reason string // AckRefused only
}

// Cancel tells the receiver the sender gave the transfer up.
type Cancel struct {
	ID     [16]byte
	Reason string
}

// chunkCount is the number of chunks of a file of size bytes.
func chunkCount(size uint64, chunk uint32) uint64 {
	if chunk == 0 {
		return 0
	}
	return (size + uint64(chunk) - 1) / uint64(chunk)
}

// Marshal encodes the offer after checking it.
func (o *Offer) Marshal() ([]byte, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, offerFixed+len(o.Name)+len(o.Mime)+groupExt)
	b = append(b, kindOffer)
	b = append(b, o.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, o.Size)
	b = append(b, o.SHA256[:]...)
	b = binary.BigEndian.AppendUint32(b, o.ChunkSize)
	b = binary.BigEndian.AppendUint32(b, o.Chunks)
	b = append(b, byte(len(o.Name)))
	b = append(b, o.Name...)
	b = append(b, byte(len(o.Mime)))
	b = append(b, o.Mime...)
	if o.Group != ([16]byte{}) {
		b = append(b, tagGroup)
		b = append(b, o.Group[:]...)
		b = binary.BigEndian.AppendUint64(b, o.GroupEpoch)
	}
	return b, nil
}

func (o *Offer) validate() error {
	switch {
	case o.ID == [16]byte{}:
		return fmt.Errorf("%w: offer: transfer ID is zero", ErrMalformed)
	case o.ChunkSize == 0 || o.ChunkSize > MaxChunk:
		return fmt.Errorf("%w: offer: chunk size %d is outside 1..%d", ErrMalformed, o.ChunkSize, MaxChunk)
	case uint64(o.Chunks) != chunkCount(o.Size, o.ChunkSize):
		return fmt.Errorf("%w: offer: %d chunks do not fit %d bytes in chunks of %d (want %d)", ErrMalformed, o.Chunks, o.Size, o.ChunkSize, chunkCount(o.Size, o.ChunkSize))
	case o.Group != ([16]byte{}) && o.GroupEpoch == 0:
		return fmt.Errorf("%w: offer: group epoch is 0 (epochs start at 1)", ErrMalformed)
	case o.Group == ([16]byte{}) && o.GroupEpoch != 0:
		return fmt.Errorf("%w: offer: group epoch %d without a group", ErrMalformed, o.GroupEpoch)
	}
	if err := CheckName(o.Name); err != nil {
		return fmt.Errorf("%w: offer: %w", ErrMalformed, err)
	}
	if err := checkMime(o.Mime); err != nil {
		return fmt.Errorf("%w: offer: %w", ErrMalformed, err)
	}
	return nil
}

// checkMime accepts "" or a printable ASCII type/subtype with parameters.
func checkMime(m string) error {
	if len(m) > MaxMimeLen {
		return fmt.Errorf("media type is %d bytes, over %d", len(m), MaxMimeLen)
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 0x20 || m[i] > 0x7e {
			return fmt.Errorf("media type %q has a byte outside printable ASCII", m)
		}
	}
	if m != "" && !strings.Contains(m, "/") {
		return fmt.Errorf("media type %q is not of the form type/subtype", m)
	}
	return nil
}

// Marshal encodes the chunk.
func (c *Chunk) Marshal() ([]byte, error) {
	if len(c.Data) == 0 || len(c.Data) > MaxChunk {
		return nil, fmt.Errorf("%w: chunk: %d bytes is outside 1..%d", ErrMalformed, len(c.Data), MaxChunk)
	}
	b := make([]byte, 0, 21+len(c.Data))
	b = append(b, kindChunk)
	b = append(b, c.ID[:]...)
	b = binary.BigEndian.AppendUint32(b, c.Index)
	return append(b, c.Data...), nil
}

// Marshal encodes the ack; Have is cut to its first MaxRanges ranges (the
// sender then learns the rest from a later ack).
func (a *Ack) Marshal() ([]byte, error) {
	b := []byte{kindAck}
	b = append(b, a.ID[:]...)
	b = append(b, a.Status)
	switch a.Status {
	case AckReceiving, AckComplete:
		have := a.Have
		if a.Status == AckComplete {
			have = nil
		}
		if len(have) > MaxRanges {
			have = have[:MaxRanges]
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(have)))
		for _, r := range have {
			b = binary.BigEndian.AppendUint32(b, r.Start)
			b = binary.BigEndian.AppendUint32(b, r.End-r.Start)
		}
		return b, nil
	case AckRefused:
		reason := clipReason(a.Reason)
		if reason == "" {
			reason = "refused"
		}
		return append(b, reason...), nil
	}
	return nil, fmt.Errorf("%w: ack: status %d unknown", ErrMalformed, a.Status)
}

// Marshal encodes the cancellation.
func (c *Cancel) Marshal() ([]byte, error) {
	b := []byte{kindCancel}
	b = append(b, c.ID[:]...)
	return append(b, clipReason(c.Reason)...), nil
}

// clipReason cuts s to MaxReason bytes without splitting a character.
func clipReason(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= MaxReason {
		return s
	}
	cut := MaxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Decode reads one file message: it returns *Offer, *Chunk, *Ack or
// *Cancel (a Chunk's Data aliases b). It is strict: exact lengths, no trailing bytes, every field in
// range; errors wrap ErrMalformed and name the field.
func Decode(b []byte) (any, error) {
	if len(b) < 17 {
		return nil, fmt.Errorf("%w: %d bytes is shorter than any file message (17)", ErrMalformed, len(b))
	}
	var id [16]byte
	copy(id[:], b[1:17])
	if id == ([16]byte{}) {
		return nil, fmt.Errorf("%w: transfer ID is zero", ErrMalformed)
	}
	rest := b[17:]
	switch b[0] {
	case kindOffer:
		if len(b) < offerFixed {
			return nil, fmt.Errorf("%w: offer is %d bytes, shorter than its fixed part (%d)", ErrMalformed, len(b), offerFixed)
		}
		o := &Offer{ID: id, Size: binary.BigEndian.Uint64(rest), ChunkSize: binary.BigEndian.Uint32(rest[40:]), Chunks: binary.BigEndian.Uint32(rest[44:])}
		copy(o.SHA256[:], rest[8:40])
		rest = rest[48:]
		n := int(rest[0])
		if len(rest) < 1+n+1 {
			return nil, fmt.Errorf("%w: offer: name of %d bytes runs past the end", ErrMalformed, n)
		}
		o.Name = string(rest[1 : 1+n])
		rest = rest[1+n:]
		m := int(rest[0])
		if len(rest) < 1+m {
			return nil, fmt.Errorf("%w: offer: media type of %d bytes runs past the end (%d bytes left)", ErrMalformed, m, len(rest)-1)
		}
		o.Mime = string(rest[1 : 1+m])
		switch ext := rest[1+m:]; {
		case len(ext) == 0:
		case ext[0] != tagGroup:
			return nil, fmt.Errorf("%w: offer: %d bytes after the media type start with tag %#02x, not the group extension (0x01)", ErrMalformed, len(ext), ext[0])
		case len(ext) != groupExt:
			return nil, fmt.Errorf("%w: offer: group extension is %d bytes, want %d (tag, group ID, epoch)", ErrMalformed, len(ext), groupExt)
		default:
			copy(o.Group[:], ext[1:17])
			o.GroupEpoch = binary.BigEndian.Uint64(ext[17:])
			if o.Group == ([16]byte{}) {
				return nil, fmt.Errorf("%w: offer: group ID is zero", ErrMalformed)
			}
		}
		if err := o.validate(); err != nil {
			return nil, err
		}
		return o, nil
	case kindChunk:
		if len(rest) < 5 || len(rest)-4 > MaxChunk {
			return nil, fmt.Errorf("%w: chunk carries %d bytes, want 1..%d", ErrMalformed, len(rest)-4, MaxChunk)
		}
		return &Chunk{ID: id, Index: binary.BigEndian.Uint32(rest), Data: rest[4:]}, nil
	case kindAck:
		if len(rest) < 1 {
			return nil, fmt.Errorf("%w: ack has no status", ErrMalformed)
		}
		a := &Ack{ID: id, Status: rest[0]}
		rest = rest[1:]
		switch a.Status {
		case AckReceiving, AckComplete:
			if len(rest) < 2 {
				return nil, fmt.Errorf("%w: ack has no range count", ErrMalformed)
			}
			n := int(binary.BigEndian.Uint16(rest))
			rest = rest[2:]
			if n > MaxRanges || len(rest) != 8*n {
				return nil, fmt.Errorf("%w: ack: %d ranges need %d bytes, have %d (at most %d ranges)", ErrMalformed, n, 8*n, len(rest), MaxRanges)
			}
			if a.Status == AckComplete && n != 0 {
				return nil, fmt.Errorf("%w: a complete ack carries no ranges", ErrMalformed)
			}
			for i := 0; i < n; i++ {
				start, length := binary.BigEndian.Uint32(rest[8*i:]), binary.BigEndian.Uint32(rest[8*i+4:])
				end := uint64(start) + uint64(length)
				switch {
				case length == 0:
					return nil, fmt.Errorf("%w: ack: range %d is empty", ErrMalformed, i)
				case end > 1<<32-1:
					return nil, fmt.Errorf("%w: ack: range %d ends past chunk 2^32-1", ErrMalformed, i)
				case i > 0 && start <= a.Have[i-1].End:
					return nil, fmt.Errorf("%w: ack: range %d starts at %d, not after the previous one (ends %d): ranges must be sorted and apart", ErrMalformed, i, start, a.Have[i-1].End)
				}
				a.Have = append(a.Have, Range{Start: start, End: uint32(end)})
			}
		case AckRefused:
			if len(rest) == 0 || len(rest) > MaxReason || !utf8.Valid(rest) {
				return nil, fmt.Errorf("%w: refusal reason must be 1..%d bytes of UTF-8", ErrMalformed, MaxReason)
			}
			a.Reason = string(rest)
		default:
			return nil, fmt.Errorf("%w: ack status %d unknown (0 receiving, 1 complete, 2 refused)", ErrMalformed, a.Status)
		}
		return a, nil
	case kindCancel:
		if len(rest) > MaxReason || !utf8.Valid(rest) {
			return nil, fmt.Errorf("%w: cancel reason must be 0..%d bytes of UTF-8", ErrMalformed, MaxReason)
		}
		return &Cancel{ID: id, Reason: string(rest)}, nil
	}
	return nil, fmt.Errorf("%w: kind %#02x unknown (1 offer, 2 chunk, 3 ack, 4 cancel)", ErrMalformed, b[0])
}
