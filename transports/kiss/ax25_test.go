package kiss_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ternmesh/tern/transports/kiss"
)

func addr(t testing.TB, s string) kiss.Address {
	t.Helper()
	a, err := kiss.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]string{"N0CALL-7": "N0CALL-7", "n0call": "N0CALL", "K1A-0": "K1A", "W1AW-15": "W1AW-15"} {
		a, err := kiss.ParseAddress(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseAddress(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
	for in, why := range map[string]string{
		"":          "1-6 characters",
		"TOOLONG1":  "1-6 characters",
		"N0-CALL":   "SSID",
		"N0CALL-16": "SSID",
		"N0CALL-":   "SSID",
		"N0CALL--1": "SSID",
		"N0 CAL":    "not A-Z",
		"N0CÄL":     "not A-Z",
	} {
		if _, err := kiss.ParseAddress(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseAddress(%q) error = %v, want one mentioning %q", in, err, why)
		}
	}
}

func TestUIFrameBytes(t *testing.T) {
	f := kiss.NewUI(addr(t, "TERN"), addr(t, "N0CALL-7"), nil, []byte("hi"))
	got, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xA8, 0x8A, 0xA4, 0x9C, 0x40, 0x40, 0xE0, // TERN, C=1
		0x9C, 0x60, 0x86, 0x82, 0x98, 0x98, 0x6F, // N0CALL-7, C=0, last
		0x03, 0xF0, 'h', 'i'}
	if !bytes.Equal(got, want) {
		t.Fatalf("UI frame\n got % X\nwant % X", got, want)
	}
	// With digipeaters only the last one carries the end bit.
	f = kiss.NewUI(addr(t, "TERN"), addr(t, "N0CALL-7"), []kiss.Address{addr(t, "WIDE1-1"), addr(t, "WIDE2-2")}, nil)
	got, _ = f.Encode()
	if got[13] != 0x6E || got[20] != 0x62 || got[27] != 0x65 || len(got) != 30 {
		t.Fatalf("address end bits wrong: % X", got)
	}
	dec, err := kiss.DecodeAX25(got)
	if err != nil || len(dec.Path) != 2 || dec.Path[1].String() != "WIDE2-2" || !dec.Dest.CH || dec.Src.CH {
		t.Fatalf("decode: %+v, %v", dec, err)
	}
}

func TestUIFrameLimits(t *testing.T) {
	src, dst := addr(t, "N0CALL"), addr(t, "TERN")
	if _, err := kiss.NewUI(dst, src, nil, make([]byte, 257)).Encode(); err == nil {
		t.Error("257-byte info accepted")
	}
	if _, err := kiss.NewUI(dst, src, nil, make([]byte, 256)).Encode(); err != nil {
		t.Errorf("256-byte info refused: %v", err)
	}
	path := make([]kiss.Address, 9)
	for i := range path {
		path[i] = addr(t, "WIDE1-1")
	}
	if _, err := kiss.NewUI(dst, src, path, nil).Encode(); err == nil {
		t.Error("9 digipeaters accepted")
	}
	if _, err := kiss.NewUI(kiss.Address{Call: "bad!"}, src, nil, nil).Encode(); err == nil {
		t.Error("invalid destination accepted")
	}
}

// Receivers accept any C-bit combination (old AX.25 v1 stations send both
// clear or both set).
func TestDecodeAnyCBits(t *testing.T) {
	b, _ := kiss.NewUI(addr(t, "TERN"), addr(t, "N0CALL-3"), nil, []byte("x")).Encode()
	for _, bits := range [][2]byte{{0, 0}, {0x80, 0x80}, {0, 0x80}} {
		c := bytes.Clone(b)
		c[6] = c[6]&^0x80 | bits[0]
		c[13] = c[13]&^0x80 | bits[1]
		f, err := kiss.DecodeAX25(c)
		if err != nil || !f.IsUI() || f.PID != kiss.PIDNoL3 || f.Src.String() != "N0CALL-3" || string(f.Info) != "x" {
			t.Errorf("C bits %v: %+v, %v", bits, f, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := kiss.NewUI(addr(t, "TERN"), addr(t, "N0CALL"), nil, nil).Encode()
	noEnd := bytes.Clone(good)
	noEnd[13] &^= 1
	lower := bytes.Clone(good)
	lower[0] = 'a' << 1
	for name, b := range map[string][]byte{
		"short": good[:10], "no end bit": noEnd, "lowercase": lower, "no PID": good[:15],
	} {
		if _, err := kiss.DecodeAX25(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A connected-mode SABM has no PID and is not UI.
	sabm := append(bytes.Clone(good[:14]), 0x3F)
	f, err := kiss.DecodeAX25(sabm)
	if err != nil || f.IsUI() || f.HasPID {
		t.Errorf("SABM: %+v, %v", f, err)
	}
}

func FuzzAX25Decode(f *testing.F) {
	b, _ := kiss.NewUI(kiss.Address{Call: "TERN"}, kiss.Address{Call: "N0CALL", SSID: 7}, []kiss.Address{{Call: "WIDE1", SSID: 1}}, []byte("hello")).Encode()
	f.Add(b)
	f.Add([]byte{0xA8, 0x8A, 0xA4, 0x9C, 0x40, 0x40, 0xE0, 0x9C, 0x60, 0x86, 0x82, 0x98, 0x98, 0x6F, 0x3F})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := kiss.DecodeAX25(in)
		if err != nil {
			return
		}
		if len(fr.Path) > kiss.MaxDigis {
			t.Fatalf("%d digipeaters", len(fr.Path))
		}
		if len(fr.Info) > kiss.MaxInfo {
			return // legal on air with a larger N1; we just do not re-encode it
		}
		out, err := fr.Encode()
		if err != nil {
			t.Fatalf("decoded frame does not re-encode: %v", err)
		}
		// Only the reserved SSID bits may differ (senders set them; receivers ignore them).
		if len(out) != len(in) {
			t.Fatalf("re-encoded to %d bytes from %d", len(out), len(in))
		}
		for i := range in {
			mask := byte(0xFF)
			if i < 7*(2+len(fr.Path)) && i%7 == 6 {
				mask = 0x9F
			}
			if in[i]&mask != out[i]&mask {
				t.Fatalf("re-encoded differently at byte %d\n in % X\nout % X", i, in, out)
			}
		}
	})
}
