package sx127x

import (
	"errors"
	"fmt"
)

// IRQ flag bits of RegIrqFlags (0x12); writing 1 clears a flag.
const (
	IrqRxTimeout   = 0x80
	IrqRxDone      = 0x40
	IrqCrcError    = 0x20
	IrqValidHeader = 0x10
	IrqTxDone      = 0x08
	IrqCadDone     = 0x04
	IrqFhssChange  = 0x02
	IrqCadDetected = 0x01
)

// ErrCRC is returned by ParseRxStatus for a frame with a payload CRC error.
var ErrCRC = errors.New("payload CRC error")

// ErrNoPacket is returned by ParseRxStatus when RxDone is not set.
var ErrNoPacket = errors.New("no packet: RxDone not set")

// RxStatus is what the chip says about a received packet.
type RxStatus struct {
	Length int     // RxNbBytes
	Start  byte    // FifoRxCurrentAddr: where the packet starts in the FIFO
	RSSI   float64 // dBm
	SNR    float64 // dB
}

// ParseRxStatus interprets the bytes read after an RxDone interrupt:
// IrqFlags, RxNbBytes, FifoRxCurrentAddr, PktSnrValue and PktRssiValue.
// hf selects the RSSI offset of the high-frequency port (>= 525 MHz: -157)
// or the low one (-164). It returns ErrNoPacket, ErrCRC, or an error for a
// zero length; any byte values are accepted.
func ParseRxStatus(flags, nbBytes, current, snr, rssi byte, hf bool) (RxStatus, error) {
	if flags&IrqRxDone == 0 {
		return RxStatus{}, fmt.Errorf("IrqFlags 0x%02X: %w", flags, ErrNoPacket)
	}
	if flags&IrqCrcError != 0 {
		return RxStatus{}, fmt.Errorf("IrqFlags 0x%02X: %w", flags, ErrCRC)
	}
	if nbBytes == 0 {
		return RxStatus{}, fmt.Errorf("RxDone with RxNbBytes 0: chip state is inconsistent")
	}
	off := 157.0
	if !hf {
		off = 164
	}
	return RxStatus{Length: int(nbBytes), Start: current, SNR: float64(int8(snr)) / 4, RSSI: float64(rssi) - off}, nil
}
