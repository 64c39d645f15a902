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
	f.Add(append([]byte{2}, good[1:]...))
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
		if !bytes.Equal(again, v) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", v, again)
		}
		if len(r.Raw) > 0 {
			before := r.Raw[0]
			v[recordHeaderLen] ^= 0xff
			if r.Raw[0] != before {
				t.Fatal("decoded Raw aliases the input; it must be a copy")
			}
		}
		if rawLen(v) != int64(len(r.Raw)) {
			t.Fatalf("rawLen %d, len(Raw) %d", rawLen(v), len(r.Raw))
		}
	})
}
