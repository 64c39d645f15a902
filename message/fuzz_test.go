package message

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzMessage(f *testing.F) {
	for _, m := range []*Message{
		{Type: Text, ID: msgID, Sent: 1767225600000, Text: "héllo"},
		{Type: Text, Text: "hi"},
		{Type: Receipt, Ref: msgID},
		{Type: Read, ID: msgID, Sent: 1, Ref: msgID},
		{Type: File, Data: []byte{0xa1, 0x01, 0x02}},
	} {
		data, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := m.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted %x but re-encodes to %x, %v", data, again, err)
		}
	})
}
