package modem

import (
	"bytes"
	"testing"
)

// FuzzRNodeParse feeds arbitrary bytes to the KISS decoder and the RNode
// frame parser: nothing panics, no frame exceeds the limit, and a data frame
// re-encoded with kissFrame decodes to itself.
func FuzzRNodeParse(f *testing.F) {
	f.Add([]byte{0xC0, 0x08, 0x46, 0xC0, 0xC0, 0x50, 0x01, 0x4A, 0xC0})
	f.Add([]byte{0xC0, 0x23, 0x50, 0xC0, 0xC0, 0x24, 0xF8, 0xC0, 0xC0, 0x00, 'h', 'i', 0xC0})
	f.Add([]byte{0xC0, 0x00, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0, 0xC0, 0x90, 0x04, 0xC0})
	f.Add([]byte{0xC0, 0xDB, 0x01, 0xC0, 0xC0, 0xC0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var d kissDecoder
		d.feed(in, func(fr []byte) {
			if len(fr) == 0 || len(fr) > rnodeMaxKISS {
				t.Fatalf("decoder emitted a frame of %d bytes", len(fr))
			}
			ev, ok := parseRNodeFrame(fr)
			if ok && ev.kind == rnEvData {
				var d2 kissDecoder
				var back []byte
				d2.feed(kissFrame(rnCmdData, ev.data), func(g []byte) { back = append([]byte(nil), g...) })
				if !bytes.Equal(back, fr) {
					t.Fatalf("re-encoded frame differs")
				}
			}
		})
	})
}

// FuzzRAKLine parses arbitrary RUI3 output lines without panicking; a
// receive event always carries a payload.
func FuzzRAKLine(f *testing.F) {
	for _, s := range []string{"OK", "AT_PARAM_ERROR", "+EVT:TXP2P DONE", "+EVT:RXP2P:-45:12:48656C6C6F", "+EVT:RXP2P:-45:x:00", "RAKwireless RAK3172"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ev, err := parseRAKLine(line)
		if err == nil && ev.kind == rakEvRx && len(ev.data) == 0 {
			t.Fatalf("receive event with no payload from %q", line)
		}
	})
}

// FuzzE22Reply checks the configuration-reply parser: it never panics and
// accepts only well-formed replies of the asked length.
func FuzzE22Reply(f *testing.F) {
	f.Add([]byte{0xC1, 0x00, 0x07, 0x00, 0x01, 0x00, 0x62, 0x00, 0x12, 0x80}, byte(0), byte(7))
	f.Add([]byte{0xFF, 0xFF, 0xFF}, byte(0), byte(7))
	f.Add([]byte{0xC1, 0x05, 0x01, 0x12}, byte(5), byte(1))
	f.Fuzz(func(t *testing.T, b []byte, addr, n byte) {
		data, err := parseE22Reply(b, addr, n)
		if err == nil && len(data) != int(n) {
			t.Fatalf("accepted %d data bytes, asked for %d", len(data), n)
		}
		if _, ok := e22Packet(b, true); ok && len(b) < 2 {
			t.Fatalf("packet from %d bytes with an RSSI byte", len(b))
		}
	})
}
