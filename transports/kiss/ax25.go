package kiss

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// AX.25 constants for the frames Tern sends.
const (
	ControlUI  = 0x03 // unnumbered information, P/F bit clear
	PIDNoL3    = 0xF0 // no layer-3 protocol
	MaxInfo    = 256  // default AX.25 info-field limit (N1)
	MaxDigis   = 8    // digipeaters in one frame
	addrLen    = 7
	minFrame   = 2*addrLen + 1
	ssidMask   = 0x1E
	chBit      = 0x80
	reserved   = 0x60
	endOfAddrs = 0x01
)

// ErrNoCallsign says that a link needs the operator's callsign.
var ErrNoCallsign = errors.New("amateur-radio links need your callsign: add ?call=YOURCALL-N (the law requires station identification)")

// Address is one AX.25 address: a callsign of 1-6 characters A-Z 0-9 and an
// SSID 0-15. CH is the C bit for the destination and source (command/
// response) and the H bit ("has been repeated") for a digipeater.
type Address struct {
	Call string
	SSID uint8
	CH   bool
}

// ParseAddress parses "N0CALL", "N0CALL-7" (case-insensitive); a trailing
// "*" (the digipeater "has been repeated" mark) sets CH.
func ParseAddress(s string) (Address, error) {
	var a Address
	orig := s
	if strings.HasSuffix(s, "*") {
		a.CH = true
		s = s[:len(s)-1]
	}
	call, ssid, hasSSID := strings.Cut(s, "-")
	if hasSSID {
		n, err := strconv.Atoi(ssid)
		if err != nil || n < 0 || n > 15 || len(ssid) > 2 {
			return Address{}, fmt.Errorf("callsign %q: SSID %q must be a number 0-15", orig, ssid)
		}
		a.SSID = uint8(n)
	}
	call = strings.ToUpper(call)
	if err := validCall(call); err != nil {
		return Address{}, fmt.Errorf("callsign %q: %w", orig, err)
	}
	a.Call = call
	return a, nil
}

func validCall(call string) error {
	if len(call) < 1 || len(call) > 6 {
		return fmt.Errorf("must be 1-6 characters A-Z and 0-9, got %d", len(call))
	}
	for i := 0; i < len(call); i++ {
		c := call[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("character %q is not A-Z or 0-9", c)
		}
	}
	return nil
}

// String formats a as "CALL" or "CALL-SSID".
func (a Address) String() string {
	if a.SSID == 0 {
		return a.Call
	}
	return a.Call + "-" + strconv.Itoa(int(a.SSID))
}

// Same reports whether a and b name the same station (ignoring CH).
func (a Address) Same(b Address) bool { return a.Call == b.Call && a.SSID == b.SSID }

func appendAddress(dst []byte, a Address, last bool) ([]byte, error) {
	if err := validCall(a.Call); err != nil {
		return dst, fmt.Errorf("callsign %q: %w", a.Call, err)
	}
	if a.SSID > 15 {
		return dst, fmt.Errorf("callsign %q: SSID %d must be 0-15", a.Call, a.SSID)
	}
	for i := 0; i < 6; i++ {
		c := byte(' ')
		if i < len(a.Call) {
			c = a.Call[i]
		}
		dst = append(dst, c<<1)
	}
	s := byte(reserved) | a.SSID<<1
	if a.CH {
		s |= chBit
	}
	if last {
		s |= endOfAddrs
	}
	return append(dst, s), nil
}

func decodeAddress(b []byte) (Address, error) {
	var call [6]byte
	n := 0
	for i := 0; i < 6; i++ {
		if b[i]&1 != 0 {
			return Address{}, fmt.Errorf("address byte %d has the extension bit set", i)
		}
		c := b[i] >> 1
		if c == ' ' {
			continue
		}
		if n != i {
			return Address{}, errors.New("callsign has a space inside")
		}
		call[n] = c
		n++
	}
	a := Address{Call: string(call[:n]), SSID: b[6] & ssidMask >> 1, CH: b[6]&chBit != 0}
	if err := validCall(a.Call); err != nil {
		return Address{}, fmt.Errorf("callsign %q: %w", a.Call, err)
	}
	return a, nil
}

// AX25Frame is an AX.25 frame as a KISS TNC passes it (no flags, no FCS).
// HasPID is set for the frame types that carry a PID byte (I and UI).
type AX25Frame struct {
	Dest, Src Address
	Path      []Address // digipeaters, at most MaxDigis
	Control   byte
	PID       byte
	HasPID    bool
	Info      []byte
}

// NewUI returns a UI frame with PID "no layer 3", as Tern sends it:
// destination C=1, source C=0, digipeaters not yet repeated.
func NewUI(dest, src Address, path []Address, info []byte) AX25Frame {
	dest.CH, src.CH = true, false
	p := make([]Address, len(path))
	for i, a := range path {
		a.CH = false
		p[i] = a
	}
	return AX25Frame{Dest: dest, Src: src, Path: p, Control: ControlUI, PID: PIDNoL3, HasPID: true, Info: info}
}

// IsUI reports whether f is a UI frame (poll/final bit ignored).
func (f AX25Frame) IsUI() bool { return f.Control&^0x10 == ControlUI }

// Append encodes f and appends it to dst. It fails on an invalid address,
// more than MaxDigis digipeaters or an info field over MaxInfo bytes.
func (f AX25Frame) Append(dst []byte) ([]byte, error) {
	if len(f.Path) > MaxDigis {
		return dst, fmt.Errorf("ax25: %d digipeaters, at most %d allowed", len(f.Path), MaxDigis)
	}
	if len(f.Info) > MaxInfo {
		return dst, fmt.Errorf("ax25: info field of %d bytes, at most %d allowed", len(f.Info), MaxInfo)
	}
	var err error
	if dst, err = appendAddress(dst, f.Dest, false); err != nil {
		return dst, fmt.Errorf("ax25 destination: %w", err)
	}
	if dst, err = appendAddress(dst, f.Src, len(f.Path) == 0); err != nil {
		return dst, fmt.Errorf("ax25 source: %w", err)
	}
	for i, a := range f.Path {
		if dst, err = appendAddress(dst, a, i == len(f.Path)-1); err != nil {
			return dst, fmt.Errorf("ax25 digipeater %d: %w", i+1, err)
		}
	}
	dst = append(dst, f.Control)
	if f.HasPID {
		dst = append(dst, f.PID)
	}
	return append(dst, f.Info...), nil
}

// Encode returns f encoded.
func (f AX25Frame) Encode() ([]byte, error) {
	return f.Append(make([]byte, 0, 2*addrLen+addrLen*len(f.Path)+2+len(f.Info)))
}

// DecodeAX25 parses an AX.25 frame as received from a KISS TNC. It accepts
// any C/H bits and info fields of any length; Info aliases b.
func DecodeAX25(b []byte) (AX25Frame, error) {
	if len(b) < minFrame {
		return AX25Frame{}, fmt.Errorf("ax25: frame of %d bytes is shorter than two addresses and a control byte", len(b))
	}
	var f AX25Frame
	var addrs []Address
	off := 0
	for {
		if len(addrs) == 2+MaxDigis {
			return AX25Frame{}, fmt.Errorf("ax25: more than %d digipeaters", MaxDigis)
		}
		if off+addrLen > len(b) {
			return AX25Frame{}, errors.New("ax25: address field runs past the end of the frame")
		}
		a, err := decodeAddress(b[off : off+addrLen])
		if err != nil {
			return AX25Frame{}, fmt.Errorf("ax25 address %d: %w", len(addrs)+1, err)
		}
		addrs = append(addrs, a)
		last := b[off+6]&endOfAddrs != 0
		off += addrLen
		if last {
			break
		}
	}
	if len(addrs) < 2 {
		return AX25Frame{}, errors.New("ax25: the address field ends after the destination")
	}
	f.Dest, f.Src = addrs[0], addrs[1]
	if len(addrs) > 2 {
		f.Path = addrs[2:]
	}
	if off >= len(b) {
		return AX25Frame{}, errors.New("ax25: no control byte")
	}
	f.Control = b[off]
	off++
	// I frames (bit 0 clear) and UI frames carry a PID.
	if f.Control&1 == 0 || f.IsUI() {
		if off >= len(b) {
			return AX25Frame{}, errors.New("ax25: no PID byte")
		}
		f.PID, f.HasPID = b[off], true
		off++
	}
	f.Info = b[off:]
	return f, nil
}
