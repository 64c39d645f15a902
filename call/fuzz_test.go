package call

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func FuzzUnmarshalSignal(f *testing.F) {
	for _, s := range []Signal{
		{Kind: KindInvite, Call: ID{1}, Codec: Codec, Key: [KeySize]byte{2}},
		{Kind: KindAccept, Call: ID{3}, Key: [KeySize]byte{4}},
		{Kind: KindDecline, Call: ID{5}},
		{Kind: KindHangup, Call: ID{6}, Reason: ReasonUnreachable},
		{Kind: KindBusy, Call: ID{7}},
	} {
		b, err := s.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalSignal(b)
		if err != nil {
			return
		}
		again, err := s.Marshal()
		if err != nil {
			t.Fatalf("accepted %x but cannot encode it again: %v", b, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode(%x) encodes as %x", b, again)
		}
	})
}

// FuzzOpenFrame: whatever arrives as a voice datagram, the receive path
// never panics, and only frames sealed with the key open.
func FuzzOpenFrame(f *testing.F) {
	key := [KeySize]byte{9}
	s := &sealer{aead: newAEAD(key), dir: dirFromCaller, tag: [8]byte{1}}
	for _, opus := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0xAB}, 80)} {
		p, _, _ := s.seal(frameTimes{media: 960, sent: 20000, echo: 1, delay: noEcho}, opus)
		f.Add(p)
	}
	f.Add([]byte{})
	f.Add([]byte{frameVersion, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5})
	f.Fuzz(func(t *testing.T, p []byte) {
		_, seq, err := parseFrameHead(p)
		if err != nil {
			return
		}
		o := &opener{aead: newAEAD(key), dir: dirFromCaller}
		tm, opus, _, err := o.open(p, seq)
		if err != nil {
			return
		}
		// It opened: it must be one of the seeds, sealed with the key.
		re := &sealer{aead: newAEAD(key), dir: dirFromCaller, tag: [8]byte(p[1:9]), next: uint64(seq)}
		again, _, err := re.seal(tm, opus)
		if err != nil || !bytes.Equal(again, p) {
			t.Fatalf("opened %x, which does not seal back to itself", p)
		}
		if binary.BigEndian.Uint32(p[9:13]) != seq {
			t.Fatal("sequence number mismatch")
		}
	})
}

// FuzzWindow: random arrival orders keep the replay window and its loss
// figure in line with a model (see TestWindowMatchesAModel).
func FuzzWindow(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 2})
	f.Add([]byte{0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 4, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkWindow(t, func() (uint32, bool) {
			if len(b) < 4 {
				return 0, false
			}
			v := binary.BigEndian.Uint32(b) % 5000
			b = b[4:]
			return v, true
		}, 1<<20)
	})
}
