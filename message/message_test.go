package message

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var (
	msgID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	text  = strings.Repeat("x", 40)
)

func TestRoundTrip(t *testing.T) {
	for name, m := range map[string]*Message{
		"text":              {Type: Text, ID: msgID, Sent: 1767225600000, Text: "héllo ✓"},
		"text minimal":      {Type: Text, Text: "hi"},
		"text at the limit": {Type: Text, Text: strings.Repeat("é", MaxText/2)},
		"receipt":           {Type: Receipt, Sent: 5, Ref: msgID},
		"read with ID":      {Type: Read, ID: [16]byte{9}, Ref: msgID},
		"group data":        {Type: Group, Data: []byte{0xa0}},
		"file data, max":    {Type: File, ID: msgID, Sent: 7, Data: bytes.Repeat([]byte{7}, MaxData)},
		"call data":         {Type: Call, Data: []byte("x")},
	} {
		t.Run(name, func(t *testing.T) {
			data, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := Unmarshal(data)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip changed the message:\n in  %+v\n out %+v", m, got)
			}
			again, _ := got.Marshal()
			if !bytes.Equal(again, data) {
				t.Fatalf("re-encoding changed the bytes: %x then %x", data, again)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	data, err := (&Message{Type: Text, Text: "hi"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The compact text form: 0x01 then the UTF-8 text.
	if want := []byte{0x01, 'h', 'i'}; !bytes.Equal(data, want) {
		t.Fatalf("minimal text encodes as %x, want %x", data, want)
	}
	if _, err := Unmarshal([]byte{0x01}); err == nil {
		t.Error("an empty compact text was accepted")
	}
	if _, err := Unmarshal([]byte{0x01, 0xff, 0xfe}); err == nil {
		t.Error("a compact text with invalid UTF-8 was accepted")
	}
	// The array form of the same message is not its deterministic encoding.
	if _, err := Unmarshal([]byte{0x84, 0x01, 0x40, 0x00, 0x62, 'h', 'i'}); err == nil {
		t.Error("the array form of a compact-able text was accepted")
	}
	data, _ = (&Message{Type: Text, ID: msgID, Sent: 1767225600000, Text: text}).Marshal()
	if got := len(data) - len(text); got != 30 {
		t.Fatalf("a 40-byte text with ID and Sent costs %d bytes of framing, want 30", got)
	}
	data, _ = (&Message{Type: Text, Text: text}).Marshal()
	if got := len(data) - len(text); got != 1 {
		t.Fatalf("a 40-byte text without ID or Sent costs %d bytes of framing, want 1", got)
	}
}

func TestValidation(t *testing.T) {
	cases := map[string]struct {
		m       Message
		mention string
	}{
		"unknown type":    {Message{Type: 99, Text: "x"}, "Type"},
		"type zero":       {Message{Text: "x"}, "Type"},
		"negative sent":   {Message{Type: Text, Sent: -1, Text: "x"}, "Sent"},
		"empty text":      {Message{Type: Text}, "Text"},
		"text too long":   {Message{Type: Text, Text: strings.Repeat("x", MaxText+1)}, "Text"},
		"invalid UTF-8":   {Message{Type: Text, Text: "\xff"}, "UTF-8"},
		"text with ref":   {Message{Type: Text, Text: "x", Ref: msgID}, "Ref"},
		"receipt no ref":  {Message{Type: Receipt}, "Ref"},
		"read with text":  {Message{Type: Read, Ref: msgID, Text: "x"}, "Text"},
		"receipt no ref2": {Message{Type: Read, Sent: 3}, "Ref"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.m.Marshal()
			checkMalformed(t, "Marshal", err, c.mention)
		})
	}
}

func checkMalformed(t *testing.T, op string, err error, mention string) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("%s: got %v, want ErrMalformed", op, err)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("%s: error %q does not mention %q", op, err, mention)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	ref := append([]byte{0x50}, msgID[:]...)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := map[string]struct {
		data    []byte
		mention string
	}{
		"empty":             {nil, "EOF"},
		"three items":       {[]byte{0x83, 0x01, 0x40, 0x00}, "number of elements"},
		"text as bytes":     {[]byte{0x84, 0x01, 0x40, 0x00, 0x42, 'h', 'i'}, "text string"},
		"ref as text":       {cat([]byte{0x84, 0x02, 0x40, 0x00, 0x70}, msgID[:]), "byte string"},
		"short ref":         {cat([]byte{0x84, 0x02, 0x40, 0x00, 0x4f}, msgID[:15]), "Ref"},
		"zero ID spelled":   {cat([]byte{0x84, 0x01, 0x50}, make([]byte, 16), []byte{0x00, 0x61, 'x'}), "empty byte string"},
		"8-byte ID":         {cat([]byte{0x84, 0x01, 0x48}, make([]byte, 8), []byte{0x00, 0x61, 'x'}), "ID is 8 bytes"},
		"invalid UTF-8":     {[]byte{0x84, 0x01, 0x40, 0x00, 0x61, 0xff}, "UTF-8"},
		"non-minimal type":  {[]byte{0x84, 0x18, 0x01, 0x40, 0x00, 0x61, 'x'}, "deterministic"},
		"non-minimal text":  {[]byte{0x84, 0x01, 0x40, 0x00, 0x78, 0x01, 'x'}, "deterministic"},
		"tagged text":       {[]byte{0x84, 0x01, 0x40, 0x00, 0xc0, 0x61, 'x'}, "tag"},
		"indefinite text":   {[]byte{0x84, 0x01, 0x40, 0x00, 0x7f, 0x61, 'x', 0xff}, "indefinite"},
		"null sent":         {[]byte{0x84, 0x01, 0x40, 0xf6, 0x61, 'x'}, "simple value"},
		"null body":         {[]byte{0x84, 0x01, 0x40, 0x00, 0xf6}, "simple value"},
		"negative sent":     {[]byte{0x84, 0x01, 0x40, 0x20, 0x61, 'x'}, "Sent"},
		"trailing":          {[]byte{0x84, 0x01, 0x40, 0x00, 0x61, 'x', 0x00}, "extraneous"},
		"receipt with text": {cat([]byte{0x84, 0x02, 0x40, 0x00}, ref, []byte{0x61, 'x'}), "extraneous"},
		"too large":         {make([]byte, maxEncoded+1), "larger than any valid"},
		"map":               {[]byte{0xa1, 0x01, 0x01}, "cannot unmarshal"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Unmarshal(c.data)
			checkMalformed(t, "Unmarshal", err, c.mention)
		})
	}
}

func TestTypeString(t *testing.T) {
	for ty, want := range map[Type]string{Text: "text", Receipt: "receipt", Read: "read", 7: "type(7)"} {
		if got := ty.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(ty), got, want)
		}
	}
}

// BenchmarkTextFraming measures what a 40-byte text costs beyond its bytes,
// with ID and Sent (framing-bytes-full) and without (framing-bytes-min, the
// radio form).
func BenchmarkTextFraming(b *testing.B) {
	full := &Message{Type: Text, ID: msgID, Sent: 1767225600000, Text: text}
	short := &Message{Type: Text, Text: text}
	var nFull, nMin int
	b.ReportAllocs()
	for b.Loop() {
		f, err := full.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		s, err := short.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		nFull, nMin = len(f)-len(text), len(s)-len(text)
	}
	b.ReportMetric(float64(nFull), "framing-bytes-full")
	b.ReportMetric(float64(nMin), "framing-bytes-min")
}

func BenchmarkUnmarshal(b *testing.B) {
	data, err := (&Message{Type: Text, ID: msgID, Sent: 1767225600000, Text: text}).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppDataRules(t *testing.T) {
	for name, m := range map[string]*Message{
		"empty data":        {Type: Group},
		"data too long":     {Type: File, Data: make([]byte, MaxData+1)},
		"text in call":      {Type: Call, Data: []byte{1}, Text: "x"},
		"ref in group":      {Type: Group, Data: []byte{1}, Ref: msgID},
		"data in a text":    {Type: Text, Text: "x", Data: []byte{1}},
		"data in a receipt": {Type: Receipt, Ref: msgID, Data: []byte{1}},
	} {
		if _, err := m.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Marshal returned %v, want ErrMalformed", name, err)
		}
	}
	// A group message whose fourth item is a text string, not bytes.
	if _, err := Unmarshal([]byte{0x84, 0x04, 0x40, 0x00, 0x61, 'x'}); !errors.Is(err, ErrMalformed) {
		t.Errorf("group message with a text body: %v, want ErrMalformed", err)
	}
}
