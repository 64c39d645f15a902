package sx127x

import (
	"errors"
	"testing"
)

// FuzzParseRxStatus feeds arbitrary register bytes (IrqFlags, RxNbBytes,
// FifoRxCurrentAddr, PktSnrValue, PktRssiValue) to the parser.
func FuzzParseRxStatus(f *testing.F) {
	f.Add([]byte{0x50, 13, 0, 0x6C, 0x43})
	f.Add([]byte{0x70, 13, 0, 0, 0})
	f.Add([]byte{0x08, 0, 0, 0, 0})
	f.Add([]byte{0x40, 0, 0x80, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r [6]byte
		copy(r[:], b)
		st, err := ParseRxStatus(r[0], r[1], r[2], r[3], r[4], r[5]&1 == 0)
		if err != nil {
			if r[0]&IrqRxDone != 0 && r[0]&IrqCrcError == 0 && r[1] != 0 {
				t.Fatalf("good packet rejected: %v", err)
			}
			return
		}
		if r[0]&IrqCrcError != 0 || errors.Is(err, ErrCRC) {
			t.Fatal("CRC error accepted")
		}
		if st.Length < 1 || st.Length > 255 || st.SNR < -32 || st.SNR > 32 || st.RSSI < -164 || st.RSSI > 98 {
			t.Fatalf("out of range: %+v", st)
		}
	})
}
