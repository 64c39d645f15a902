package quiclink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestReadFrame(t *testing.T) {
	var stream []byte
	for _, f := range [][]byte{{}, []byte("a"), bytes.Repeat([]byte{9}, 5000)} {
		stream = append(appendHeader(stream, len(f)), f...)
	}
	r := bytes.NewReader(stream)
	for _, want := range []int{0, 1, 5000} {
		f, err := readFrame(r, 5000)
		if err != nil || len(f) != want {
			t.Fatalf("frame of %d: got %d bytes, %v", want, len(f), err)
		}
	}
	if _, err := readFrame(r, 5000); err != io.EOF {
		t.Fatalf("clean end: %v, want io.EOF", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 9, 1}), 100); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated payload: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0}), 100); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated header: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 101}), 100); !errors.Is(err, errFrameTooLong) {
		t.Fatalf("length above max: %v", err)
	}
	// A 16 MiB claim with 3 bytes behind it must not reserve 16 MiB.
	big := binary.BigEndian.AppendUint32(nil, MTU)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := readFrame(bytes.NewReader(append(big, 1, 2, 3)), MTU); err != io.ErrUnexpectedEOF {
		t.Fatalf("16 MiB claim, 3 bytes: %v", err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 2*allocStep {
		t.Fatalf("a 16 MiB claim with 3 bytes behind it allocated %d bytes", got)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 1, 'd'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 1, 0, 1, 2})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, max := range []int{16, MTU} {
			r := bytes.NewReader(data)
			for {
				before := r.Len()
				fr, err := readFrame(r, max)
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errFrameTooLong) {
						t.Fatalf("unexpected error %v", err)
					}
					break
				}
				if len(fr) > max {
					t.Fatalf("frame of %d bytes above max %d", len(fr), max)
				}
				if used := before - r.Len(); used != headerLen+len(fr) {
					t.Fatalf("consumed %d bytes for a %d-byte frame", used, len(fr))
				}
				if !bytes.Equal(fr, data[len(data)-before+headerLen:len(data)-before+headerLen+len(fr)]) {
					t.Fatal("frame content differs from the stream")
				}
			}
		}
	})
}

// TestPooledFramesKeepTheirBoundaries: a pooled buffer is larger than the
// frame it carries; reading must still stop at the frame's end.
func TestPooledFramesKeepTheirBoundaries(t *testing.T) {
	var stream bytes.Buffer
	sizes := []int{poolMin + 1, 100, 3 * poolMin, poolMin}
	for i, n := range sizes {
		stream.Write(appendFrameHeader(n))
		stream.Write(bytes.Repeat([]byte{byte(i + 1)}, n))
	}
	var p bufPool
	for i, n := range sizes {
		f, err := readFrameFrom(&stream, MTU, &p)
		if err != nil || len(f) != n || f[0] != byte(i+1) || f[n-1] != byte(i+1) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(f), err)
		}
		p.put(f) // recycled: the next large frame reuses it
	}
}

func appendFrameHeader(n int) []byte {
	return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}
