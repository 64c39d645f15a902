package sx126x

import "testing"

// FuzzParseResponses feeds arbitrary SPI responses to every parser of bytes
// read from the chip: status byte, IRQ status, RX buffer status, packet status.
func FuzzParseResponses(f *testing.F) {
	f.Add([]byte{0x12, 0x54, 0x00, 0x02})
	f.Add([]byte{0x13, 0x54, 0x2A, 0x00})
	f.Add([]byte{0x14, 0x54, 0xBE, 0x58, 0xBE})
	f.Add([]byte{0xC0, 0x20})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0 {
			st, err := ParseStatus(b[0])
			if err == nil && (st.Mode < ModeStbyRC || st.Mode > ModeTX) {
				t.Fatalf("bad mode accepted: %+v", st)
			}
			if (b[0] == 0 || b[0] == 0xFF) && err == nil {
				t.Fatal("bus with no chip accepted")
			}
		}
		if irq, err := ParseIrqStatus(b); err == nil && len(b) < 4 {
			t.Fatalf("short irq response parsed: %x", irq)
		}
		if rb, err := ParseRxBufferStatus(b); err == nil && (rb.Length < 1 || rb.Length > 255) {
			t.Fatalf("bad length accepted: %+v", rb)
		}
		if rssi, snr, err := ParsePacketStatus(b); err == nil && (rssi > 0 || rssi < -127.5 || snr < -32 || snr > 32) {
			t.Fatalf("out of range: %v %v", rssi, snr)
		}
	})
}
