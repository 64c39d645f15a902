package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json and the fuzz seed corpora")

// shaReader is deterministic randomness for vectors: block i is
// SHA-256(seed || uint64 big-endian i), concatenated.
type shaReader struct {
	seed []byte
	i    uint64
	buf  []byte
}

func (r *shaReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			h := sha256.New()
			h.Write(r.seed)
			h.Write(binary.BigEndian.AppendUint64(nil, r.i))
			r.i++
			r.buf = h.Sum(nil)
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}

type identityVector struct {
	Seed            string `json:"seed"`
	Ed25519Pub      string `json:"ed25519_pub"`
	MLDSAPubSHA256  string `json:"mldsa44_pub_sha256"`
	Address         string `json:"address"`
	PrekeyEpoch     uint32 `json:"prekey_epoch"`
	PrekeyPubSHA256 string `json:"xwing_prekey_pub_sha256"`
}

type sealVector struct {
	Comment       string `json:"comment"`
	SenderSeed    string `json:"sender_seed"`
	RecipientSeed string `json:"recipient_seed"`
	NowUnix       int64  `json:"now_unix"`
	RandSeed      string `json:"rand_seed"`
	Plaintext     string `json:"plaintext"`
	Sealed        string `json:"sealed"`
}

// replyVector is the recipient's answer to the sealed init, in the message
// form (4-byte wire session id, 16-bit counter).
type replyVector struct {
	Comment   string `json:"comment"`
	Plaintext string `json:"plaintext"`
	Sealed    string `json:"sealed"`
}

type vectors struct {
	Identities  []identityVector `json:"identities"`
	SealedInit  sealVector       `json:"sealed_init"`
	SealedReply replyVector      `json:"sealed_reply"`
	// CompactCard is the recipient's compact card URI (the card of sealed_init).
	CompactCard string `json:"recipient_compact_card_uri"`
}

func computeVectors(t *testing.T) vectors {
	t.Helper()
	var v vectors
	epoch := PrekeyEpoch(testNow)
	for _, seed := range [][]byte{seedOf(0), seedOf(0xA1), []byte("tern known-answer seed 32 bytes!")} {
		id, err := IdentityFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		ml := sha256.Sum256(id.MLDSAPublicKey())
		pk, err := id.PrekeyPublic(epoch)
		if err != nil {
			t.Fatal(err)
		}
		pkh := sha256.Sum256(pk)
		v.Identities = append(v.Identities, identityVector{
			Seed: hex.EncodeToString(seed), Ed25519Pub: hex.EncodeToString(id.PublicKey()),
			MLDSAPubSHA256: hex.EncodeToString(ml[:]), Address: id.Address().String(),
			PrekeyEpoch: epoch, PrekeyPubSHA256: hex.EncodeToString(pkh[:]),
		})
	}
	sv := sealVector{
		Comment:       "sender seals plaintext to the recipient's card issued at now_unix (valid 30 days); rand is SHA-256(rand_seed || u64be(i)) blocks",
		SenderSeed:    hex.EncodeToString(seedOf(0xA1)),
		RecipientSeed: hex.EncodeToString(seedOf(0xB0)),
		NowUnix:       testNow.Unix(),
		RandSeed:      hex.EncodeToString([]byte("tern vector rand")),
		Plaintext:     "hello from the known-answer test",
	}
	sender, _ := IdentityFromSeed(seedOf(0xA1))
	recipient, _ := IdentityFromSeed(seedOf(0xB0))
	card, err := recipient.NewCard("bob", nil, testNow, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return testNow }
	box, err := NewBox(sender, newMemKV(), &shaReader{seed: []byte("tern vector rand")}, now)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal(recipient.Address(), card, []byte(sv.Plaintext))
	if err != nil {
		t.Fatal(err)
	}
	sv.Sealed = hex.EncodeToString(sealed)
	v.SealedInit = sv
	rbox, err := NewBox(recipient, newMemKV(), &shaReader{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rbox.Open(sealed); err != nil {
		t.Fatal(err)
	}
	v.SealedReply = replyVector{
		Comment:   "the recipient opens sealed_init, then seals plaintext back to the sender (message form, counter 0)",
		Plaintext: "reply in the 23-byte message form",
	}
	reply, err := rbox.Seal(sender.Address(), nil, []byte(v.SealedReply.Plaintext))
	if err != nil {
		t.Fatal(err)
	}
	v.SealedReply.Sealed = hex.EncodeToString(reply)
	v.CompactCard = card.CompactURI()
	return v
}

func TestKnownAnswerVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	got := computeVectors(t)
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run KnownAnswer -update once to create it)", err)
	}
	var want vectors
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Identities) != len(got.Identities) {
		t.Fatalf("%d identity vectors, computed %d", len(want.Identities), len(got.Identities))
	}
	for i, w := range want.Identities {
		if got.Identities[i] != w {
			t.Errorf("identity vector %d:\n got %+v\nwant %+v", i, got.Identities[i], w)
		}
	}
	if got.SealedInit.Sealed != want.SealedInit.Sealed {
		t.Errorf("sealed init bytes changed: the wire format or a derivation changed (if on purpose, bump versions and run -update)")
	}
	if got.SealedReply != want.SealedReply {
		t.Errorf("sealed reply changed: the message form or a derivation changed (if on purpose, bump versions and run -update)")
	}
	if got.CompactCard != want.CompactCard {
		t.Errorf("compact card URI changed: the compact card format changed (if on purpose, bump its version and run -update)")
	}
	// The stored payload must open for the recipient, from the sender.
	seed, _ := hex.DecodeString(want.SealedInit.RecipientSeed)
	recipient, _ := IdentityFromSeed(seed)
	now := time.Unix(want.SealedInit.NowUnix, 0)
	box, err := NewBox(recipient, newMemKV(), &shaReader{}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := hex.DecodeString(want.SealedInit.Sealed)
	o, err := box.Open(sealed)
	if err != nil {
		t.Fatalf("open the vector: %v", err)
	}
	sseed, _ := hex.DecodeString(want.SealedInit.SenderSeed)
	sender, _ := IdentityFromSeed(sseed)
	if o.From != sender.Address() || !bytes.Equal(o.Plaintext, []byte(want.SealedInit.Plaintext)) || !o.NewSession {
		t.Fatalf("vector opened as %+v", o)
	}
	// The stored reply opens for the sender, whose session state is rebuilt
	// from the same seeds and randomness.
	rcard, err := ParseCardURI(want.CompactCard, now)
	if err != nil || rcard.Address() != recipient.Address() || !rcard.Compact() {
		t.Fatalf("compact card vector: %v", err)
	}
	sbox, err := NewBox(sender, newMemKV(), &shaReader{seed: []byte("tern vector rand")}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sbox.Seal(recipient.Address(), rcard, []byte(want.SealedInit.Plaintext)); err != nil {
		t.Fatal(err)
	}
	reply, _ := hex.DecodeString(want.SealedReply.Sealed)
	if len(reply) != len(want.SealedReply.Plaintext)+23 || reply[0] != typeMsg {
		t.Fatalf("reply vector is %d bytes of type %#x, want %d of type 0x02", len(reply), reply[0], len(want.SealedReply.Plaintext)+23)
	}
	o, err = sbox.Open(reply)
	if err != nil || o.From != recipient.Address() || string(o.Plaintext) != want.SealedReply.Plaintext {
		t.Fatalf("reply vector opened as %+v, %v", o, err)
	}
}

// TestExpandIsHKDF pins expand32 to crypto/hkdf.Expand.
func TestExpandIsHKDF(t *testing.T) {
	prk := bytes.Repeat([]byte{7}, 32)
	want, err := hkdfExpandForTest(prk, "tern/v1/msg\x00\x00\x00\x00\x00\x00\x00\x05")
	if err != nil {
		t.Fatal(err)
	}
	got := expand32(prk, []byte(labelMsgKey), []byte{0, 0, 0, 0, 0, 0, 0, 5})
	if !bytes.Equal(got[:], want) {
		t.Fatal("expand32 differs from HKDF-Expand")
	}
}
