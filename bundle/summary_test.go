package bundle

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func grants(n int) []Grant {
	out := make([]Grant, n)
	for i := range out {
		// Every fourth grant is the largest budget, so that full summaries
		// carry 3-byte Copies heads.
		c := uint16(1 + i%MaxCopies)
		if i%4 == 3 {
			c = MaxCopies
		}
		out[i] = Grant{ID: ID{byte(i >> 8), byte(i), 0xee}, Copies: c}
	}
	return out
}

func TestSummaryRoundTrip(t *testing.T) {
	for name, s := range map[string]*Summary{
		"empty":        {},
		"held only":    {Flags: SummaryHeld, Held: ids(3)},
		"receipts":     {Delivered: ids(2)},
		"grants":       {Grants: grants(2)},
		"all full":     {Flags: SummaryHeld, Held: ids(MaxSummaryIDs), Delivered: ids(MaxSummaryIDs), Grants: grants(MaxSummaryGrants)},
		"held flag, 0": {Flags: SummaryHeld},
		"aired":        {Flags: SummaryAired, Grants: grants(1)},
	} {
		data, err := s.Marshal()
		if err != nil {
			t.Fatalf("%s: Marshal: %v", name, err)
		}
		out, err := UnmarshalSummary(data)
		if err != nil {
			t.Fatalf("%s: Unmarshal: %v", name, err)
		}
		if out.Flags != s.Flags || !slices.Equal(out.Held, s.Held) || !slices.Equal(out.Delivered, s.Delivered) || !slices.Equal(out.Grants, s.Grants) {
			t.Fatalf("%s: round trip changed the summary", name)
		}
		if again, _ := out.Marshal(); !bytes.Equal(data, again) {
			t.Fatalf("%s: re-encoding changed the bytes", name)
		}
		if len(data) > maxSummaryLen {
			t.Errorf("%s: %d bytes, above maxSummaryLen %d", name, len(data), maxSummaryLen)
		}
	}
	// nil and empty lists encode alike, as empty arrays.
	if b, _ := (&Summary{}).Marshal(); !bytes.Equal(b, []byte{0x84, 0x00, 0x80, 0x80, 0x80}) {
		t.Fatalf("empty summary encodes as %x, want 8400808080", b)
	}
}

func TestSummaryValidation(t *testing.T) {
	dup := ids(3)
	dup[2] = dup[0]
	zero := ids(2)
	zero[1] = ID{}
	dupGrant := grants(2)
	dupGrant[1].ID = dupGrant[0].ID
	noCopies := grants(1)
	noCopies[0].Copies = 0
	tooMany := grants(1)
	tooMany[0].Copies = MaxCopies + 1
	cases := map[string]struct {
		s       *Summary
		mention string
	}{
		"unknown flag":        {&Summary{Flags: 8}, "Flags"},
		"aired without grant": {&Summary{Flags: SummaryAired}, "aired"},
		"held without flag":   {&Summary{Held: ids(1)}, "SummaryHeld"},
		"too many held":       {&Summary{Flags: SummaryHeld, Held: ids(MaxSummaryIDs + 1)}, "Held IDs, over"},
		"too many delivered":  {&Summary{Delivered: ids(MaxSummaryIDs + 1)}, "Delivered IDs, over"},
		"too many grants":     {&Summary{Grants: grants(MaxSummaryGrants + 1)}, "grants"},
		"duplicate held":      {&Summary{Flags: SummaryHeld, Held: dup}, "Held[2]"},
		"zero delivered":      {&Summary{Delivered: zero}, "Delivered[1]"},
		"duplicate grant":     {&Summary{Grants: dupGrant}, "Grants[1]"},
		"grant of no copies":  {&Summary{Grants: noCopies}, "Grants[0].Copies"},
		"grant over the max":  {&Summary{Grants: tooMany}, "Grants[0].Copies is 4097, over the maximum 4096"},
		"zero ID in a grant":  {&Summary{Grants: []Grant{{Copies: 1}}}, "Grants[0].ID"},
		"zero ID in held":     {&Summary{Flags: SummaryHeld, Held: []ID{{}}}, "Held[0]"},
		"duplicate delivered": {&Summary{Delivered: dup}, "Delivered[2]"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.s.Marshal()
			checkMalformed(t, "Marshal", err, c.mention)
			s := *c.s
			for _, l := range []*[]ID{&s.Held, &s.Delivered} {
				if *l == nil {
					*l = []ID{}
				}
			}
			if s.Grants == nil {
				s.Grants = []Grant{}
			}
			data, err := encMode.Marshal(&s)
			if err != nil {
				t.Fatal(err)
			}
			_, err = UnmarshalSummary(data)
			if len(s.Held) > MaxSummaryIDs || len(s.Delivered) > MaxSummaryIDs {
				// The decoder refuses the list head before validation.
				checkMalformed(t, "UnmarshalSummary", err, "max number of elements")
				return
			}
			checkMalformed(t, "UnmarshalSummary", err, c.mention)
		})
	}
	good, _ := (&Summary{Flags: SummaryHeld, Held: ids(1)}).Marshal()
	raw := map[string]struct {
		data    []byte
		mention string
	}{
		"null list":           {[]byte{0x84, 0x00, 0xf6, 0x80, 0x80}, "simple value"},
		"three fields":        {[]byte{0x83, 0x00, 0x80, 0x80}, "number of elements"},
		"five fields":         {[]byte{0x85, 0x00, 0x80, 0x80, 0x80, 0x00}, "number of elements"},
		"non-minimal flags":   {[]byte{0x84, 0x18, 0x01, 0x80, 0x80, 0x80}, "shortest"},
		"short ID":            {[]byte{0x84, 0x00, 0x80, 0x81, 0x4f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0x80}, "ID"},
		"grant of three":      {append(append([]byte{0x84, 0x00, 0x80, 0x80, 0x81, 0x83, 0x50}, make([]byte, 16)...), 0x01, 0x01), "number of elements"},
		"copies over 16 bits": {append(append([]byte{0x84, 0x00, 0x80, 0x80, 0x81, 0x82, 0x50}, ids(1)[0][:]...), 0x1a, 0x00, 0x01, 0x00, 0x00), "overflows"},
		"non-minimal copies":  {append(append([]byte{0x84, 0x00, 0x80, 0x80, 0x81, 0x82, 0x50}, ids(1)[0][:]...), 0x19, 0x00, 0x08), "shortest"},
		"negative copies":     {append(append([]byte{0x84, 0x00, 0x80, 0x80, 0x81, 0x82, 0x50}, ids(1)[0][:]...), 0x20), "Grants"},
		"indefinite":          {[]byte{0x84, 0x00, 0x9f, 0xff, 0x80, 0x80}, "indefinite"},
		"trailing":            {append(append([]byte{}, good...), 0), "extraneous"},
		"tag":                 {[]byte{0xc0, 0x84, 0x00, 0x80, 0x80, 0x80}, "tag"},
		"list head 4097":      {[]byte{0x84, 0x00, 0x99, 0x10, 0x01}, "exceeded max number of elements"},
		"huge":                {make([]byte, maxSummaryLen+1), "larger than any valid"},
		"map":                 {[]byte{0xa0}, "cannot unmarshal"},
	}
	for name, c := range raw {
		t.Run(name, func(t *testing.T) {
			_, err := UnmarshalSummary(c.data)
			checkMalformed(t, "UnmarshalSummary", err, c.mention)
		})
	}
}

func TestSummaryIsHopByHop(t *testing.T) {
	p, _ := (&Summary{Delivered: ids(1)}).Marshal()
	b := sample()
	b.Kind, b.HopLimit, b.Payload = KindSummary, 0, p
	raw := mustMarshal(t, b)
	got, err := Unmarshal(raw)
	if err != nil {
		t.Fatalf("a summary bundle does not decode: %v", err)
	}
	if _, err := got.Aged(1); err == nil {
		t.Fatal("a summary bundle could be aged for forwarding")
	}
	b.HopLimit = 1
	if _, err := b.Marshal(); err == nil {
		t.Fatal("a summary bundle with a hop limit was accepted")
	}
}

// TestAiredSummaryRules: an aired note carries grants only, and
// AiredNote's bytes decode to exactly that note, with a derived ID (a
// radio rebuilds it from the grant alone).
func TestAiredSummaryRules(t *testing.T) {
	for name, s := range map[string]*Summary{
		"no grant":      {Flags: SummaryAired},
		"with receipts": {Flags: SummaryAired, Delivered: ids(1), Grants: grants(1)},
		"with held":     {Flags: SummaryAired | SummaryHeld, Held: ids(1), Grants: grants(1)},
		"with echo":     {Flags: SummaryAired | SummaryEcho, Grants: grants(1)},
	} {
		if _, err := s.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Marshal gave %v, want ErrMalformed", name, err)
		}
	}
	id := ID{7, 7, 7}
	raw, err := AiredNote(id, 21)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	s, err := UnmarshalSummary(b.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if b.Kind != KindSummary || b.HopLimit != 0 || b.Dest != (Addr{}) || s.Flags != SummaryAired || len(s.Grants) != 1 || s.Grants[0] != (Grant{ID: id, Copies: 21}) {
		t.Fatalf("AiredNote decodes to %+v with %+v", b, s)
	}
	t.Logf("aired note: %d bytes", len(raw))
}

// TestGrantCopiesEncoding: Copies is a CBOR unsigned int in its shortest
// form, so a budget of at most 255 encodes as it did when Copies was one
// byte (older nodes read it), and a larger one takes a 3-byte head.
func TestGrantCopiesEncoding(t *testing.T) {
	id := ids(1)[0]
	prefix := append([]byte{0x84, 0x00, 0x80, 0x80, 0x81, 0x82, 0x50}, id[:]...)
	for _, c := range []struct {
		copies uint16
		tail   []byte
	}{
		{1, []byte{0x01}},
		{23, []byte{0x17}},
		{24, []byte{0x18, 0x18}},
		{255, []byte{0x18, 0xff}},
		{256, []byte{0x19, 0x01, 0x00}},
		{2048, []byte{0x19, 0x08, 0x00}},
		{MaxCopies, []byte{0x19, 0x10, 0x00}},
	} {
		got, err := (&Summary{Grants: []Grant{{ID: id, Copies: c.copies}}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if want := append(append([]byte{}, prefix...), c.tail...); !bytes.Equal(got, want) {
			t.Errorf("grant of %d encodes as %x, want %x", c.copies, got, want)
		}
		s, err := UnmarshalSummary(got)
		if err != nil || s.Grants[0].Copies != c.copies {
			t.Errorf("grant of %d decodes as %+v, %v", c.copies, s, err)
		}
	}
}

// TestAiredNoteCopies: an aired share is any grant from 1 to MaxCopies
// (the radio frame carries two bytes), its note's length follows the CBOR
// head of the copies, and 0 or more than MaxCopies is refused.
func TestAiredNoteCopies(t *testing.T) {
	id := ID{7, 7, 7}
	for _, c := range []struct {
		copies uint16
		size   int
	}{{1, 70}, {23, 70}, {24, 71}, {255, 71}, {256, 72}, {1024, 72}, {MaxCopies, 72}} {
		raw, err := AiredNote(id, c.copies)
		if err != nil {
			t.Fatalf("AiredNote(%d): %v", c.copies, err)
		}
		if len(raw) != c.size {
			t.Errorf("AiredNote(%d) is %d bytes, want %d", c.copies, len(raw), c.size)
		}
		b, err := Unmarshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		s, err := UnmarshalSummary(b.Payload)
		if err != nil || len(s.Grants) != 1 || s.Grants[0].Copies != c.copies {
			t.Fatalf("AiredNote(%d) decodes to %+v, %v", c.copies, s, err)
		}
	}
	for _, bad := range []uint16{0, MaxCopies + 1, 65535} {
		if _, err := AiredNote(id, bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("AiredNote(%d) gave %v, want ErrMalformed", bad, err)
		}
	}
}
