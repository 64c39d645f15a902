package crypto

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func TestClearSignedRoundTripAndTampering(t *testing.T) {
	alice, _ := GenerateIdentity(rand.Reader)
	bob, _ := GenerateIdentity(rand.Reader)
	p, err := alice.SignClear(bob.Address(), []byte("QRV on 145.500"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(p, []byte("QRV on 145.500")) {
		t.Fatal("a clear-signed payload must carry the text readably")
	}
	from, msg, err := OpenClear(bob.Address(), p)
	if err != nil || from != alice.Address() || string(msg) != "QRV on 145.500" {
		t.Fatalf("OpenClear = %s %q %v", from.Short(), msg, err)
	}
	if _, _, err := OpenClear(alice.Address(), p); !errors.Is(err, ErrForged) {
		t.Errorf("redirected to another destination: %v, want ErrForged", err)
	}
	for i := range p {
		q := append([]byte(nil), p...)
		q[i] ^= 1
		if f, m, err := OpenClear(bob.Address(), q); err == nil && (f != alice.Address() || !bytes.Equal(m, msg)) {
			t.Fatalf("flipping byte %d gave another verified message", i)
		}
	}
}

func FuzzOpenClear(f *testing.F) {
	id, _ := GenerateIdentity(rand.Reader)
	p, _ := id.SignClear(Address{1}, []byte("seed"))
	f.Add(p)
	f.Add([]byte{0x85, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		OpenClear(Address{1}, b)
	})
}
