package files

import (
	"bytes"
	"testing"
)

// FuzzDecode: no input makes Decode panic, and whatever decodes encodes
// back to the same bytes (one encoding per message).
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x01})
	f.Add(bytes.Repeat([]byte{0xff}, 80))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		again, err := p.(interface{ Marshal() ([]byte, error) }).Marshal()
		if err != nil {
			t.Fatalf("decoded %T does not encode: %v", p, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("%T: decoded %x, encodes to %x", p, b, again)
		}
	})
}
