package sx126x

import (
	"errors"
	"fmt"
)

// IRQ bits (GetIrqStatus, ClearIrqStatus, SetDioIrqParams).
const (
	IrqTxDone         = 1 << 0
	IrqRxDone         = 1 << 1
	IrqPreambleDetect = 1 << 2
	IrqSyncWordValid  = 1 << 3
	IrqHeaderValid    = 1 << 4
	IrqHeaderErr      = 1 << 5
	IrqCrcErr         = 1 << 6
	IrqCadDone        = 1 << 7
	IrqCadDetected    = 1 << 8
	IrqTimeout        = 1 << 9
	irqUsed           = IrqTxDone | IrqRxDone | IrqHeaderErr | IrqCrcErr | IrqTimeout
)

// Chip modes in the status byte (bits 6:4).
const (
	ModeStbyRC   = 2
	ModeStbyXOSC = 3
	ModeFS       = 4
	ModeRX       = 5
	ModeTX       = 6
)

// ErrNoChip is returned (wrapped) when the bus reads 0x00 or 0xFF.
var ErrNoChip = errors.New("no chip answers on the SPI bus: check the HAT is seated and the board name is right")

// ErrShort is returned (wrapped) by the parsers for a response too short.
var ErrShort = errors.New("SPI response too short")

// Status is the decoded status byte.
type Status struct {
	Mode    int // bits 6:4: 2 STBY_RC, 3 STBY_XOSC, 4 FS, 5 RX, 6 TX
	Command int // bits 3:1: 2 data available, 3 timeout, 4 invalid, 5 failed, 6 TX done
}

// ParseStatus decodes a status byte. 0x00 and 0xFF (a bus with no chip,
// pulled low or high) and reserved modes are errors.
func ParseStatus(b byte) (Status, error) {
	if b == 0x00 || b == 0xFF {
		return Status{}, fmt.Errorf("status byte 0x%02X: %w", b, ErrNoChip)
	}
	s := Status{Mode: int(b>>4) & 7, Command: int(b>>1) & 7}
	if s.Mode < ModeStbyRC || s.Mode > ModeTX || b&0x81 != 0 {
		return s, fmt.Errorf("status byte 0x%02X: reserved chip mode %d or bits set: not an SX126x answering", b, s.Mode)
	}
	return s, nil
}

// ParseIrqStatus decodes a GetIrqStatus response (opcode echo, status, irq u16).
func ParseIrqStatus(r []byte) (uint16, error) {
	if len(r) < 4 {
		return 0, fmt.Errorf("GetIrqStatus: %d bytes: %w", len(r), ErrShort)
	}
	return uint16(r[2])<<8 | uint16(r[3]), nil
}

// RxBuffer is where the last packet is in the data buffer.
type RxBuffer struct {
	Length int
	Start  byte
}

// ParseRxBufferStatus decodes a GetRxBufferStatus response.
func ParseRxBufferStatus(r []byte) (RxBuffer, error) {
	if len(r) < 4 {
		return RxBuffer{}, fmt.Errorf("GetRxBufferStatus: %d bytes: %w", len(r), ErrShort)
	}
	if r[2] == 0 {
		return RxBuffer{}, errors.New("GetRxBufferStatus: payload length 0 after RxDone: chip state is inconsistent")
	}
	return RxBuffer{Length: int(r[2]), Start: r[3]}, nil
}

// ParsePacketStatus decodes a GetPacketStatus response (LoRa): RSSI in dBm
// (-RssiPkt/2) and SNR in dB (int8/4).
func ParsePacketStatus(r []byte) (rssi, snr float64, err error) {
	if len(r) < 5 {
		return 0, 0, fmt.Errorf("GetPacketStatus: %d bytes: %w", len(r), ErrShort)
	}
	return -float64(r[2]) / 2, float64(int8(r[3])) / 4, nil
}
