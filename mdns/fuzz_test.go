package mdns

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// FuzzParseTXT: any TXT record (strings split on NUL) is either refused
// or yields a record that encodes back to itself.
func FuzzParseTXT(f *testing.F) {
	f.Add([]byte("v=1\x00id=aa010000000000000000000000000000\x00port=7337\x00card=0102030000000000"))
	f.Add([]byte("v=1\x00id=zz\x00port=99999"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		txt := strings.Split(string(b), "\x00")
		r, err := ParseTXT(txt)
		if err != nil {
			return
		}
		if r.Port < 1 || r.Port > 65535 || r.Version != Version {
			t.Fatalf("accepted %+v", r)
		}
		back, err := ParseTXT(r.TXT())
		if err != nil || back != r {
			t.Fatalf("round trip %+v -> %+v, %v", r, back, err)
		}
	})
}
