package kiss_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ternmesh/tern/transports/kiss"
)

func encode(t testing.TB, f kiss.Frame) []byte {
	t.Helper()
	b, err := kiss.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeEscapes(t *testing.T) {
	got := encode(t, kiss.Frame{Port: 2, Command: kiss.CmdData, Data: []byte{1, 0xC0, 2, 0xDB, 3}})
	want := []byte{0xC0, 0x20, 1, 0xDB, 0xDC, 2, 0xDB, 0xDD, 3, 0xC0}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded % X, want % X", got, want)
	}
	// A command byte that is itself FEND (port 12, data) must be escaped too.
	got = encode(t, kiss.Frame{Port: 12, Command: kiss.CmdData})
	if want := []byte{0xC0, 0xDB, 0xDC, 0xC0}; !bytes.Equal(got, want) {
		t.Fatalf("port 12 data frame % X, want % X", got, want)
	}
	if _, err := kiss.Encode(kiss.Frame{Port: 16}); err == nil {
		t.Fatal("port 16 accepted")
	}
}

func TestParameterFrames(t *testing.T) {
	for _, c := range []struct {
		f    kiss.Frame
		want []byte
	}{
		{kiss.TxDelay(0, 300*time.Millisecond), []byte{0xC0, 0x01, 30, 0xC0}},
		{kiss.TxDelay(1, 10*time.Second), []byte{0xC0, 0x11, 255, 0xC0}},
		{kiss.Persistence(0, 63), []byte{0xC0, 0x02, 63, 0xC0}},
		{kiss.SlotTime(0, 100*time.Millisecond), []byte{0xC0, 0x03, 10, 0xC0}},
		{kiss.TxTail(0, 20*time.Millisecond), []byte{0xC0, 0x04, 2, 0xC0}},
		{kiss.FullDuplex(0, true), []byte{0xC0, 0x05, 1, 0xC0}},
		{kiss.FullDuplex(3, false), []byte{0xC0, 0x35, 0, 0xC0}},
		{kiss.SetHardware(0, []byte("TNC")), []byte{0xC0, 0x06, 'T', 'N', 'C', 0xC0}},
		{kiss.Return(), []byte{0xC0, 0xFF, 0xC0}},
	} {
		if got := encode(t, c.f); !bytes.Equal(got, c.want) {
			t.Errorf("%+v: % X, want % X", c.f, got, c.want)
		}
	}
}

func readAll(d *kiss.Decoder) (frames []kiss.Frame, errs []error) {
	for {
		f, err := d.ReadFrame()
		if err == io.EOF {
			return
		}
		if err != nil {
			if !errors.Is(err, kiss.ErrBadEscape) && !errors.Is(err, kiss.ErrFrameTooLong) {
				errs = append(errs, err)
				return
			}
			errs = append(errs, err)
			continue
		}
		frames = append(frames, f)
	}
}

func TestDecoderStream(t *testing.T) {
	var s []byte
	s = append(s, "garbage before sync"...)
	s = append(s, 0xC0, 0xC0, 0xC0) // back-to-back FENDs: no frames
	s = append(s, encode(t, kiss.Frame{Command: kiss.CmdData, Data: []byte{0xC0, 0xDB, 'a'}})...)
	s = append(s, 0x00, 'x', 0xDB, 'Q', 'y', 0xC0) // broken escape: reported, then resync
	s = append(s, 0x00, 'z', 0xDB, 0xC0)           // FESC right before FEND: broken
	s = append(s, encode(t, kiss.Frame{Port: 1, Command: kiss.CmdTxDelay, Data: []byte{25}})...)
	s = append(s, encode(t, kiss.Frame{Data: bytes.Repeat([]byte{7}, 40)})...) // oversize for a 32-byte cap
	s = append(s, encode(t, kiss.Return())...)
	s = append(s, 0x00, 'p', 'a', 'r', 't') // truncated at EOF: discarded
	d := kiss.NewDecoder(bytes.NewReader(s), 32)
	frames, errs := readAll(d)
	if len(frames) != 3 {
		t.Fatalf("got %d frames %+v, want 3", len(frames), frames)
	}
	if !bytes.Equal(frames[0].Data, []byte{0xC0, 0xDB, 'a'}) || frames[0].Command != kiss.CmdData {
		t.Errorf("frame 0 = %+v", frames[0])
	}
	if frames[1].Port != 1 || frames[1].Command != kiss.CmdTxDelay || !bytes.Equal(frames[1].Data, []byte{25}) {
		t.Errorf("frame 1 = %+v", frames[1])
	}
	if frames[2].Command != kiss.CmdReturn {
		t.Errorf("frame 2 = %+v, want Return", frames[2])
	}
	if len(errs) != 3 || !errors.Is(errs[0], kiss.ErrBadEscape) || !errors.Is(errs[1], kiss.ErrBadEscape) || !errors.Is(errs[2], kiss.ErrFrameTooLong) {
		t.Errorf("errors = %v, want 2 bad escapes and 1 oversize", errs)
	}
	st := d.Stats()
	if st.Frames != 3 || st.BadEscape != 2 || st.Oversize != 1 || st.Garbage != uint64(len("garbage before sync")) || st.EmptyFENDs < 2 {
		t.Errorf("stats = %+v", st)
	}
}

// An endless frame from a broken TNC must not be buffered without bound.
func TestDecoderOversizeIsBounded(t *testing.T) {
	r := io.MultiReader(bytes.NewReader([]byte{0xC0, 0x00}), io.LimitReader(zeros{}, 10<<20),
		bytes.NewReader(encode(t, kiss.Frame{Data: []byte("after")})))
	d := kiss.NewDecoder(r, 0)
	if _, err := d.ReadFrame(); !errors.Is(err, kiss.ErrFrameTooLong) {
		t.Fatalf("err = %v, want ErrFrameTooLong", err)
	}
	f, err := d.ReadFrame()
	if err != nil || string(f.Data) != "after" {
		t.Fatalf("after an oversize frame: %+v, %v", f, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func FuzzKISSDecode(f *testing.F) {
	f.Add([]byte{0xC0, 0x00, 'h', 'i', 0xC0})
	f.Add([]byte{0xC0, 0xC0, 0x10, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0, 0xFF})
	f.Add([]byte{'x', 0xDB, 0xC0, 0x00, 0xDB, 0x00, 0xC0, 0xC0, 0xFF, 0xC0})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := kiss.NewDecoder(bytes.NewReader(in), 64)
		frames, errs := readAll(d)
		for _, e := range errs {
			if !errors.Is(e, kiss.ErrBadEscape) && !errors.Is(e, kiss.ErrFrameTooLong) {
				t.Fatalf("unexpected error %v", e)
			}
		}
		var again []byte
		for _, fr := range frames {
			if len(fr.Data)+1 > 64 {
				t.Fatalf("frame of %d bytes passed a 64-byte cap", len(fr.Data)+1)
			}
			b, err := kiss.Encode(fr)
			if err != nil {
				t.Fatalf("decoded frame %+v does not re-encode: %v", fr, err)
			}
			again = append(again, b...)
		}
		// Re-encoding and decoding again yields the same frames.
		frames2, errs2 := readAll(kiss.NewDecoder(bytes.NewReader(again), 64))
		if len(errs2) != 0 || len(frames2) != len(frames) {
			t.Fatalf("round trip: %d frames %v, want %d", len(frames2), errs2, len(frames))
		}
		for i := range frames {
			if frames[i].Port != frames2[i].Port || frames[i].Command != frames2[i].Command || !bytes.Equal(frames[i].Data, frames2[i].Data) {
				t.Fatalf("frame %d changed: %+v -> %+v", i, frames[i], frames2[i])
			}
		}
	})
}
