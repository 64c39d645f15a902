package store

import (
	"bytes"
	"testing"

	"github.com/ternmesh/tern/bundle"
)

func FuzzDecodeRecord(f *testing.F) {
	r := rec(1, "dest", "from", "hop", 20, 1_700_000_060_000)
	r.Received = 1_700_000_000_000
	good := encodeRecord(&r, 7)
	f.Add(good)
	f.Add(good[:recordHeaderLen])
	f.Add(good[:recordHeaderLen-1])
	f.Add([]byte{})
	f.Add(append([]byte{3}, good[1:]...))
	r.Copies = 8
	withCopies := encodeRecord(&r, 9)
	f.Add(withCopies)
	f.Add(withCopies[:record2Len])
	f.Add(withCopies[:recordHeaderLen])
	f.Fuzz(func(t *testing.T, v []byte) {
		var i bundle.ID
		copy(i[:], "fuzz-id")
		r, seq, err := decodeRecord(i, v)
		if err != nil {
			return
		}
		if r.ID != i {
			t.Fatalf("ID %x, want the key %x", r.ID, i)
		}
		again := encodeRecord(&r, seq)
		// A version 2 header with a zero budget re-encodes as version 1;
		// everything else re-encodes byte for byte.
		if !bytes.Equal(again, v) && !(v[0] == recordVersion2 && r.Copies == 0) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", v, again)
		}
		if back, seq2, err := decodeRecord(i, again); err != nil || seq2 != seq || back.Copies != r.Copies || !bytes.Equal(back.Raw, r.Raw) || back.NextHop != r.NextHop {
			t.Fatalf("second round trip differs: %v", err)
		}
		if hl := headerLen(v); len(r.Raw) > 0 {
			before := r.Raw[0]
			v[hl] ^= 0xff
			if r.Raw[0] != before {
				t.Fatal("decoded Raw aliases the input; it must be a copy")
			}
			v[hl] ^= 0xff
		}
		if rawLen(v) != int64(len(r.Raw)) {
			t.Fatalf("rawLen %d, len(Raw) %d", rawLen(v), len(r.Raw))
		}
	})
}
