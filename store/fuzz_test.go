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
	r.Copies = 4096
	withCopies := encodeRecord(&r, 9)
	f.Add(withCopies)
	f.Add(withCopies[:record3Len])
	f.Add(withCopies[:record2Len])
	f.Add(withCopies[:recordHeaderLen])
	f.Add(version2Record(&r, 9, 8))
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
		// A version 2 record re-encodes as version 3 (or as version 1 with
		// a zero budget), a version 3 one with a zero budget as version 1;
		// everything else re-encodes byte for byte.
		switch {
		case v[0] == recordVersion2 && r.Copies > 0:
			if again[0] != recordVersion3 || !bytes.Equal(again[1:offCopies], v[1:offCopies]) || !bytes.Equal(again[record3Len:], v[record2Len:]) {
				t.Fatalf("version 2 re-encoding differs:\n in  %x\n out %x", v, again)
			}
		case (v[0] == recordVersion2 || v[0] == recordVersion3) && r.Copies == 0:
			if again[0] != recordVersion {
				t.Fatalf("a zero budget re-encodes as version %d, want 1", again[0])
			}
		case !bytes.Equal(again, v):
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
