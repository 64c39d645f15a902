package group

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ternmesh/tern/crypto"
)

// seedPackets are one valid packet of each kind, signed by a fixed identity.
func seedPackets(t testing.TB) [][]byte {
	id, err := crypto.IdentityFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	g := ID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	h := id.MLDSAHash()
	m := &Membership{Group: g, Epoch: 3, Name: "Trip", OwnerEd25519: id.PublicKey(), OwnerMLDSAHash: h,
		Members: []Member{{Address: id.Address(), Name: "alice", Card: []byte{0x80}}, {Address: crypto.Address{9}, Name: "bob", Card: []byte{0x81, 0x00}}},
		Key:     [KeySize]byte{42}, Issued: 1767225600000}
	up, err := EncodeUpdate(id, m)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := EncodeRemoved(id, &Removal{Group: g, Epoch: 4, Removed: crypto.Address{9}, OwnerEd25519: id.PublicKey(), OwnerMLDSAHash: h, Issued: 1})
	if err != nil {
		t.Fatal(err)
	}
	text, _, err := EncodeText(m.Key, g, 3, id.Address(), 1767225600000, "hello group", bytes.NewReader(make([]byte, 24)))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := EncodeAck(g, [16]byte{5}, AckRead)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{up, rm, text, ack}
}

// FuzzDecode: any input decodes to a packet or fails with ErrMalformed or
// ErrForged, never panics; a text or ack that decodes re-encodes to the
// same bytes, and a text opens with its key or fails as forged.
func FuzzDecode(f *testing.F) {
	for _, p := range seedPackets(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrForged", err)
			}
			return
		}
		switch p.Kind {
		case KindAck:
			again, err := EncodeAck(p.Group, p.Msg, p.State)
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("ack %x re-encodes to %x (%v)", data, again, err)
			}
		case KindText:
			again, _ := encodePacket(textWire{Kind: uint8(KindText), Group: p.Group[:], Epoch: p.Epoch, Nonce: p.Nonce[:], Ciphertext: p.Ciphertext})
			if !bytes.Equal(again, data) {
				t.Fatalf("text %x re-encodes to %x", data, again)
			}
			if _, _, _, err := OpenText(p, [KeySize]byte{42}); err != nil && !errors.Is(err, ErrForged) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("OpenText: %v", err)
			}
		case KindUpdate:
			if p.Membership == nil || p.Membership.Validate() != nil {
				t.Fatalf("update decoded to an invalid membership %+v", p.Membership)
			}
		case KindRemoved:
			if p.Removal == nil || p.Removal.validate() != nil {
				t.Fatalf("removal decoded to an invalid notice %+v", p.Removal)
			}
		default:
			t.Fatalf("decoded unknown kind %d", p.Kind)
		}
	})
}

// TestSeedCorpusIsCurrent keeps testdata/fuzz/FuzzDecode in step with the
// encoder: each seed file decodes (TERN_WRITE_SEEDS=1 rewrites them).
func TestSeedCorpusIsCurrent(t *testing.T) {
	names := []string{"update", "removed", "text", "ack"}
	for i, p := range seedPackets(t) {
		checkSeed(t, names[i], p)
	}
}
