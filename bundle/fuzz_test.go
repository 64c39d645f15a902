package bundle

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// Every decoder here is canonical: whatever it accepts re-encodes to exactly
// the input bytes, and whatever it rejects is ErrMalformed.

func FuzzUnmarshal(f *testing.F) {
	f.Add(mustMarshal(f, sample()))
	ack := sample()
	ack.Kind, ack.HopLimit, ack.Payload = KindCustodyAck, 0, []byte{0x81, 0x50, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	f.Add(mustMarshal(f, ack))
	f.Add([]byte{0x8a, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Unmarshal(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := b.Marshal()
		if err != nil {
			t.Fatalf("accepted bundle does not re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", data, again)
		}
		_ = b.Remaining(0)
		if next, err := b.Aged(1); err == nil && next.Validate() != nil {
			t.Fatalf("Aged produced an invalid bundle: %v", next.Validate())
		}
	})
}

func FuzzCustodyAck(f *testing.F) {
	seed, err := MarshalCustodyAck(ids(3))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := UnmarshalCustodyAck(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := MarshalCustodyAck(got)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted %x but re-encodes to %x, %v", data, again, err)
		}
	})
}

func FuzzAnnounce(f *testing.F) {
	seed, err := (&Announce{Seq: 300, Routes: routes(2)}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{0x82, 0x05, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := UnmarshalAnnounce(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := got.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted %x but re-encodes to %x, %v", data, again, err)
		}
		back, err := UnmarshalAnnounce(again)
		if err != nil || back.Seq != got.Seq || !slices.Equal(back.Routes, got.Routes) {
			t.Fatalf("second round trip differs: %v", err)
		}
	})
}

func FuzzSummary(f *testing.F) {
	seed, err := (&Summary{Flags: SummaryHeld, Held: ids(2), Delivered: ids(1), Grants: grants(2)}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{0x84, 0x00, 0x80, 0x80, 0x80})
	if aired, err := (&Summary{Flags: SummaryAired, Grants: grants(1)}).Marshal(); err == nil {
		f.Add(aired)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := UnmarshalSummary(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := got.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted %x but re-encodes to %x, %v", data, again, err)
		}
		if got.Flags&SummaryHeld == 0 && len(got.Held) > 0 {
			t.Fatal("accepted Held IDs without the SummaryHeld flag")
		}
	})
}
