package bundle

import (
	"bytes"
	"slices"
	"testing"
)

func ids(n int) []ID {
	out := make([]ID, n)
	for i := range out {
		out[i] = ID{byte(i >> 8), byte(i), 0xcc}
	}
	return out
}

func TestCustodyAckRoundTrip(t *testing.T) {
	for _, n := range []int{1, 23, 24, 255, 256, MaxCustodyAckIDs} {
		in := ids(n)
		data, err := MarshalCustodyAck(in)
		if err != nil {
			t.Fatalf("%d IDs: Marshal: %v", n, err)
		}
		out, err := UnmarshalCustodyAck(data)
		if err != nil {
			t.Fatalf("%d IDs: Unmarshal: %v", n, err)
		}
		if !slices.Equal(in, out) {
			t.Fatalf("%d IDs: round trip changed the list", n)
		}
		again, _ := MarshalCustodyAck(out)
		if !bytes.Equal(data, again) {
			t.Fatalf("%d IDs: re-encoding changed the bytes", n)
		}
	}
}

func TestCustodyAckValidation(t *testing.T) {
	dup := ids(3)
	dup[2] = dup[0]
	withZero := ids(3)
	withZero[1] = ID{}
	cases := map[string]struct {
		ids     []ID
		mention string
	}{
		"empty":     {[]ID{}, "no IDs"},
		"too many":  {ids(MaxCustodyAckIDs + 1), "custody ack"},
		"duplicate": {dup, "IDs[2]"},
		"zero ID":   {withZero, "IDs[1]"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := MarshalCustodyAck(c.ids)
			checkMalformed(t, "MarshalCustodyAck", err, c.mention)
			data, err := encMode.Marshal(c.ids)
			if err != nil {
				t.Fatal(err)
			}
			_, err = UnmarshalCustodyAck(data)
			checkMalformed(t, "UnmarshalCustodyAck", err, c.mention)
		})
	}
	good, _ := MarshalCustodyAck(ids(2))
	raw := map[string]struct {
		data    []byte
		mention string
	}{
		"non-minimal head": {append([]byte{0x98, 0x02}, good[1:]...), "shortest"},
		"short ID":         {[]byte{0x81, 0x4f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, "ID"},
		"indefinite":       {append(append([]byte{0x9f}, good[1:]...), 0xff), "indefinite"},
		"map":              {[]byte{0xa0}, "cannot unmarshal"},
		"trailing":         {append(append([]byte{}, good...), 0), "extraneous"},
		"huge":             {make([]byte, 3+17*MaxCustodyAckIDs+1), "larger than any valid"},
		"array head 1025":  {[]byte{0x99, 0x04, 0x01}, "exceeded max number of elements"},
	}
	for name, c := range raw {
		t.Run(name, func(t *testing.T) {
			_, err := UnmarshalCustodyAck(c.data)
			checkMalformed(t, "UnmarshalCustodyAck", err, c.mention)
		})
	}
}

func routes(n int) []Route {
	out := make([]Route, n)
	for i := range out {
		out[i] = Route{Dest: Addr{byte(i >> 8), byte(i), 0xdd}, Hops: uint8(i % (MaxHopLimit + 1))}
	}
	return out
}

func TestAnnounceRoundTrip(t *testing.T) {
	for _, a := range []*Announce{
		{Seq: 0},
		{Seq: 1, Routes: []Route{}},
		{Seq: 1 << 40, Routes: routes(1)},
		{Seq: 77, Routes: routes(MaxAnnounceRoutes)},
	} {
		data, err := a.Marshal()
		if err != nil {
			t.Fatalf("Seq %d, %d routes: Marshal: %v", a.Seq, len(a.Routes), err)
		}
		out, err := UnmarshalAnnounce(data)
		if err != nil {
			t.Fatalf("Seq %d, %d routes: Unmarshal: %v", a.Seq, len(a.Routes), err)
		}
		if out.Seq != a.Seq || !slices.Equal(out.Routes, a.Routes) {
			t.Fatalf("Seq %d, %d routes: round trip changed the announce", a.Seq, len(a.Routes))
		}
		if again, _ := out.Marshal(); !bytes.Equal(data, again) {
			t.Fatalf("Seq %d: re-encoding changed the bytes", a.Seq)
		}
	}
	// A nil and an empty route list encode alike, as an empty array.
	a, _ := (&Announce{Seq: 5}).Marshal()
	b, _ := (&Announce{Seq: 5, Routes: []Route{}}).Marshal()
	if !bytes.Equal(a, b) || !bytes.Equal(a, []byte{0x82, 0x05, 0x80}) {
		t.Fatalf("empty announce encodes as %x and %x, want 820580", a, b)
	}
}

func TestAnnounceValidation(t *testing.T) {
	dup := routes(3)
	dup[2].Dest = dup[1].Dest
	far := routes(2)
	far[1].Hops = MaxHopLimit + 1
	cases := map[string]struct {
		a       *Announce
		mention string
	}{
		"too many routes": {&Announce{Routes: routes(MaxAnnounceRoutes + 1)}, "max"},
		"duplicate dest":  {&Announce{Routes: dup}, "Routes[2].Dest"},
		"too many hops":   {&Announce{Routes: far}, "Routes[1].Hops"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.a.Marshal()
			checkMalformed(t, "Marshal", err, c.mention)
			data, err := encMode.Marshal(c.a)
			if err != nil {
				t.Fatal(err)
			}
			_, err = UnmarshalAnnounce(data)
			checkMalformed(t, "UnmarshalAnnounce", err, c.mention)
		})
	}
	raw := map[string]struct {
		data    []byte
		mention string
	}{
		"null routes":      {[]byte{0x82, 0x05, 0xf6}, "simple value"},
		"non-minimal seq":  {[]byte{0x82, 0x18, 0x05, 0x80}, "shortest"},
		"three fields":     {[]byte{0x83, 0x05, 0x80, 0x00}, "number of elements"},
		"route of three":   {append(append([]byte{0x82, 0x05, 0x81, 0x83, 0x50}, make([]byte, 16)...), 0x01, 0x01), "number of elements"},
		"negative hops":    {append(append([]byte{0x82, 0x05, 0x81, 0x82, 0x50}, make([]byte, 16)...), 0x20), "Routes"},
		"too deep":         {[]byte{0x82, 0x05, 0x81, 0x82, 0x81, 0x81, 0x80, 0x00}, "nested level"},
		"route count head": {[]byte{0x82, 0x05, 0x99, 0x10, 0x01}, "exceeded max number of elements"},
	}
	for name, c := range raw {
		t.Run(name, func(t *testing.T) {
			_, err := UnmarshalAnnounce(c.data)
			checkMalformed(t, "UnmarshalAnnounce", err, c.mention)
		})
	}
}
