package bundle

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// sample returns a valid data bundle with a 40-byte payload, as a short
// encrypted text would be.
func sample() *Bundle {
	return &Bundle{
		Version:  Version,
		Kind:     KindData,
		Flags:    FlagClockUnsynced,
		Dest:     Addr{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf},
		ID:       ID{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f},
		Created:  1767225600000, // 2026-01-01T00:00:00Z
		Age:      61_500,
		Lifetime: 24 * 60 * 60 * 1000,
		HopLimit: 8,
		Payload:  bytes.Repeat([]byte{0xee}, 40),
	}
}

func mustMarshal(t testing.TB, b *Bundle) []byte {
	t.Helper()
	out, err := b.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	cases := map[string]func(*Bundle){
		"data":             func(*Bundle) {},
		"custody ack":      func(b *Bundle) { b.Kind, b.HopLimit = KindCustodyAck, 0 },
		"announce":         func(b *Bundle) { b.Kind, b.HopLimit = KindAnnounce, 0 },
		"clear signed":     func(b *Bundle) { b.Kind, b.Flags = KindClearSigned, FlagOverAirClear },
		"created unknown":  func(b *Bundle) { b.Created = 0 },
		"age equals life":  func(b *Bundle) { b.Age = b.Lifetime },
		"max lifetime":     func(b *Bundle) { b.Lifetime = MaxLifetime },
		"max hop limit":    func(b *Bundle) { b.HopLimit = MaxHopLimit },
		"one-byte payload": func(b *Bundle) { b.Payload = []byte{0} },
		"max payload":      func(b *Bundle) { b.Payload = make([]byte, MaxPayload) },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			in := sample()
			mod(in)
			data := mustMarshal(t, in)
			if got, want := len(data), in.EncodedLen(); got != want {
				t.Errorf("encoded %d bytes, EncodedLen says %d", got, want)
			}
			if hdr := len(data) - len(in.Payload); hdr > MaxHeaderLen {
				t.Errorf("header is %d bytes, over MaxHeaderLen %d", hdr, MaxHeaderLen)
			}
			out, err := Unmarshal(data)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !equal(in, out) {
				t.Fatalf("round trip changed the bundle:\n in  %+v\n out %+v", in, out)
			}
		})
	}
}

func equal(a, b *Bundle) bool {
	return a.Version == b.Version && a.Kind == b.Kind && a.Flags == b.Flags && a.Dest == b.Dest &&
		a.ID == b.ID && a.Created == b.Created && a.Age == b.Age && a.Lifetime == b.Lifetime &&
		a.HopLimit == b.HopLimit && bytes.Equal(a.Payload, b.Payload)
}

func TestUnmarshalCopiesPayload(t *testing.T) {
	data := mustMarshal(t, sample())
	b, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 0
	}
	if !bytes.Equal(b.Payload, sample().Payload) {
		t.Fatal("reusing the input buffer changed the decoded payload")
	}
}

func TestDeterministic(t *testing.T) {
	a := mustMarshal(t, sample())
	b := mustMarshal(t, sample())
	if !bytes.Equal(a, b) {
		t.Fatalf("same bundle, different bytes:\n%x\n%x", a, b)
	}
	// Decoding and re-encoding gives the same bytes: relays never rewrite
	// a bundle they do not age.
	d, err := Unmarshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if c := mustMarshal(t, d); !bytes.Equal(a, c) {
		t.Fatalf("re-encoding changed the bytes:\n%x\n%x", a, c)
	}
	// Shortest heads: small numbers take one byte.
	small := sample()
	small.Created, small.Age, small.Lifetime = 0, 0, 23
	data := mustMarshal(t, small)
	if got, want := len(data)-len(small.Payload), 1+1+1+1+17+17+1+1+1+1+2; got != want {
		t.Fatalf("header of a bundle with small numbers is %d bytes, want %d", got, want)
	}
}

// TestValidation checks that every rule is enforced on both sides: Marshal
// refuses to write it, Unmarshal refuses to read it, and the error names the
// field.
func TestValidation(t *testing.T) {
	cases := []struct {
		name  string
		mod   func(*Bundle)
		field string
	}{
		{"version 0", func(b *Bundle) { b.Version = 0 }, "Version"},
		{"version 2", func(b *Bundle) { b.Version = 2 }, "Version"},
		{"unknown kind", func(b *Bundle) { b.Kind = 5 }, "Kind"},
		{"unknown flag", func(b *Bundle) { b.Flags = 1 << 7 }, "Flags"},
		{"zero ID", func(b *Bundle) { b.ID = ID{} }, "ID"},
		{"negative created", func(b *Bundle) { b.Created = -1 }, "Created"},
		{"zero lifetime", func(b *Bundle) { b.Lifetime, b.Age = 0, 0 }, "Lifetime"},
		{"lifetime too long", func(b *Bundle) { b.Lifetime = MaxLifetime + 1 }, "Lifetime"},
		{"age over lifetime", func(b *Bundle) { b.Age = b.Lifetime + 1 }, "Age"},
		{"hop limit too high", func(b *Bundle) { b.HopLimit = MaxHopLimit + 1 }, "HopLimit"},
		{"custody ack with hops", func(b *Bundle) { b.Kind, b.HopLimit = KindCustodyAck, 1 }, "HopLimit"},
		{"announce with hops", func(b *Bundle) { b.Kind, b.HopLimit = KindAnnounce, 1 }, "HopLimit"},
		{"empty payload", func(b *Bundle) { b.Payload = []byte{} }, "Payload"},
		{"payload too big", func(b *Bundle) { b.Payload = make([]byte, MaxPayload+1) }, "Payload"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := sample()
			c.mod(b)
			_, err := b.Marshal()
			checkMalformed(t, "Marshal", err, c.field)
			// Encode it anyway, bypassing validation, and try to read it.
			data, err := encMode.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Unmarshal(data)
			checkMalformed(t, "Unmarshal", err, c.field)
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

// TestUnmarshalRejectsNonCanonical feeds encodings that a lax decoder would
// accept.
func TestUnmarshalRejectsNonCanonical(t *testing.T) {
	good := mustMarshal(t, sample())
	// good[1] is Version (0x01); good[2] Kind; good[3] Flags; good[4] Dest.
	splice := func(at, drop int, insert ...byte) []byte {
		out := append([]byte{}, good[:at]...)
		out = append(out, insert...)
		return append(out, good[at+drop:]...)
	}
	cases := map[string]struct {
		data    []byte
		mention string
	}{
		"empty input":               {nil, "EOF"},
		"not an array":              {[]byte{0x01}, "cannot unmarshal"},
		"nine elements":             {append([]byte{0x89}, good[1:len(good)-42]...), "number of elements"},
		"eleven elements":           {append(append([]byte{0x8b}, good[1:]...), 0x00), "number of elements"},
		"indefinite array":          {append(append([]byte{0x9f}, good[1:]...), 0xff), "indefinite"},
		"trailing byte":             {append(append([]byte{}, good...), 0x00), "extraneous"},
		"non-minimal version":       {splice(1, 1, 0x18, 0x01), "shortest"},
		"null for flags":            {splice(3, 1, 0xf6), "simple value"},
		"false for kind":            {splice(2, 1, 0xf4), "simple value"},
		"float for version":         {splice(1, 1, 0xf9, 0x3c, 0x00), "Version"},
		"tagged version":            {splice(1, 1, 0xc1, 0x01), "tag"},
		"short dest":                {splice(4, 17, 0x4f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "Addr"},
		"long dest":                 {splice(4, 17, append([]byte{0x51}, make([]byte, 17)...)...), "Addr"},
		"dest as text":              {splice(4, 1, 0x70), "Addr"},
		"version 256":               {splice(1, 1, 0x19, 0x01, 0x00), "overflows"},
		"truncated":                 {good[:len(good)-1], "EOF"},
		"absurd length":             {make([]byte, MaxHeaderLen+MaxPayload+1), "larger than any valid bundle"},
		"payload as text":           {splice(len(good)-42, 2, 0x78, 0x28), "cbor"},
		"indefinite payload string": {splice(len(good)-42, 42, append(append([]byte{0x5f}, good[len(good)-42:]...), 0xff)...), "indefinite"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Unmarshal(c.data)
			checkMalformed(t, "Unmarshal", err, c.mention)
		})
	}
}

func TestIDs(t *testing.T) {
	r := rand.NewChaCha8([32]byte{1})
	a, err := NewID(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewID(r)
	if a == b || a == (ID{}) {
		t.Fatalf("two draws gave %s and %s", a, b)
	}
	s := a.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 32 lowercase hex digits", s)
	}
	back, err := ParseID(s)
	if err != nil || back != a {
		t.Fatalf("ParseID(%q) = %s, %v", s, back, err)
	}
	if up, err := ParseID(strings.ToUpper(s)); err != nil || up != a {
		t.Fatalf("ParseID of upper case = %s, %v", up, err)
	}
	for _, bad := range []string{"", s[:31], s + "0", "zz" + s[2:]} {
		if _, err := ParseID(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseID(%q) = %v, want ErrMalformed", bad, err)
		}
	}
	if _, err := NewID(bytes.NewReader(make([]byte, 8))); err == nil {
		t.Error("NewID from a reader with 8 bytes left succeeded")
	}
	if _, err := NewID(bytes.NewReader(make([]byte, 16))); err == nil {
		t.Error("NewID accepted an all-zero draw")
	}
}

func TestRemaining(t *testing.T) {
	b := sample()
	b.Age, b.Lifetime = 400, 1000
	cases := []struct {
		held, want time.Duration
	}{
		{0, 600 * time.Millisecond},
		{-time.Hour, 600 * time.Millisecond}, // a clock that went backwards changes nothing
		{599 * time.Millisecond, time.Millisecond},
		{599*time.Millisecond + 999*time.Microsecond, time.Microsecond},
		{600 * time.Millisecond, 0}, // exactly at the boundary: expired
		{time.Hour, 0},
	}
	for _, c := range cases {
		if got := b.Remaining(c.held); got != c.want {
			t.Errorf("Remaining(%v) with Age 400 ms, Lifetime 1000 ms = %v, want %v", c.held, got, c.want)
		}
	}
	b.Age = b.Lifetime
	if got := b.Remaining(0); got != 0 {
		t.Errorf("Age == Lifetime: Remaining(0) = %v, want 0", got)
	}
}

// TestClocklessNode follows a bundle made by a node whose clock says 1970
// across relays whose clocks disagree wildly: only Age and the time each
// relay held it decide when it expires.
func TestClocklessNode(t *testing.T) {
	b := sample()
	b.Flags = FlagClockUnsynced
	b.Created = 0 // the originator has no idea what time it is
	b.Age, b.Lifetime = 0, 10*60*1000
	for hop, held := range []time.Duration{3 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		next, err := b.Aged(held)
		if err != nil {
			t.Fatalf("hop %d: %v", hop, err)
		}
		b = roundTrip(t, next)
	}
	if got := b.Remaining(0); got != time.Minute {
		t.Fatalf("after 9 minutes in transit Remaining = %v, want 1m", got)
	}
	if got := b.Remaining(time.Minute); got != 0 {
		t.Fatalf("holding the last minute: Remaining = %v, want 0", got)
	}
	if _, err := b.Aged(time.Minute); !errors.Is(err, ErrExpired) {
		t.Fatalf("forwarding after the lifetime: %v, want ErrExpired", err)
	}
}

func roundTrip(t *testing.T, b *Bundle) *Bundle {
	t.Helper()
	out, err := Unmarshal(mustMarshal(t, b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAged(t *testing.T) {
	b := sample()
	b.Age, b.Lifetime, b.HopLimit = 400, 1000, 2
	next, err := b.Aged(100*time.Millisecond + time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	if next.Age != 501 || next.HopLimit != 1 {
		t.Fatalf("Aged(100ms+1ns): Age %d HopLimit %d, want 501 (rounded up) and 1", next.Age, next.HopLimit)
	}
	if b.Age != 400 || b.HopLimit != 2 {
		t.Fatal("Aged modified the original")
	}
	last, err := next.Aged(0)
	if err != nil || last.HopLimit != 0 {
		t.Fatalf("Aged with HopLimit 1: %v, HopLimit %d; want success and 0", err, last.HopLimit)
	}
	if _, err := last.Aged(0); !errors.Is(err, ErrHopLimit) {
		t.Fatalf("Aged with HopLimit 0: %v, want ErrHopLimit", err)
	}
	if _, err := b.Aged(600 * time.Millisecond); !errors.Is(err, ErrExpired) {
		t.Fatalf("Aged exactly to the lifetime: %v, want ErrExpired", err)
	}
	if _, err := b.Aged(600*time.Millisecond - time.Nanosecond); !errors.Is(err, ErrExpired) {
		t.Fatalf("Aged to 1ns before the lifetime (rounds up to it): %v, want ErrExpired", err)
	}
	if got, err := b.Aged(599 * time.Millisecond); err != nil || got.Age != 999 {
		t.Fatalf("Aged 1 ms before the lifetime: %v, %v; want Age 999", got, err)
	}
	if _, err := b.Aged(1<<63 - 1); !errors.Is(err, ErrExpired) {
		t.Fatalf("Aged(max duration): %v, want ErrExpired", err)
	}
	if got, err := b.Aged(-time.Hour); err != nil || got.Age != 400 {
		t.Fatalf("Aged(negative): %v, %v; want Age unchanged", got, err)
	}
	for _, k := range []Kind{KindCustodyAck, KindAnnounce} {
		hb := sample()
		hb.Kind, hb.HopLimit = k, 0
		if _, err := hb.Aged(0); !errors.Is(err, ErrHopByHop) {
			t.Errorf("Aged on %s: %v, want ErrHopByHop", k, err)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindData: "data", KindCustodyAck: "custody-ack", KindAnnounce: "announce", KindClearSigned: "clear-signed", KindSummary: "summary", 9: "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	in := sample()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	data := mustMarshal(b, sample())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeaderOverhead measures the DESIGN.md radio budget's first term:
// how many bytes this CBOR header adds to a 40-byte sealed payload.
func BenchmarkHeaderOverhead(b *testing.B) {
	in := sample()
	var n int
	for b.Loop() {
		data, err := in.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		n = len(data) - len(in.Payload)
	}
	b.ReportMetric(float64(n), "header-bytes")
}

func TestDerivedID(t *testing.T) {
	b := &Bundle{Version: Version, Kind: KindData, Flags: FlagDerivedID, Dest: Addr{7}, Lifetime: 1000, HopLimit: 3, Payload: []byte("sealed")}
	b.ID = DerivedID(b.Dest, b.Payload)
	raw, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(raw); err != nil {
		t.Fatalf("a correct derived ID was refused: %v", err)
	}
	b.Payload = []byte("swapped")
	if _, err := b.Marshal(); err == nil || !strings.Contains(err.Error(), "does not match its payload") {
		t.Fatalf("an ID paired with another payload was accepted: %v", err)
	}
	if DerivedID(Addr{7}, []byte("x")) == DerivedID(Addr{8}, []byte("x")) {
		t.Error("the destination is not part of the derived ID")
	}
}
