package crypto

import (
	"encoding/binary"
	"fmt"

	"github.com/cloudflare/circl/kem/xwing"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sealed-payload layout (FORMAT.md has the full description). All integers
// are big-endian.
//
// Init form, sent until the sender has heard back on the session:
//
//	offset  size  field
//	0       1     type = 0x01
//	1       4     prekey epoch of the recipient's X-Wing prekey
//	5       1120  X-Wing ciphertext
//	1125    144   sender block: ChaCha20-Poly1305(idKey, nonce 0, AD = bytes 0..1124) of
//	              Ed25519 public key (32) || SHA-256(ML-DSA-44 key) (32) || Ed25519 signature (64)
//	1269    4     message counter
//	1273    n     ciphertext (AD = bytes 0..1272)
//	1273+n  16    tag
//
// Message form, once the sender has received anything on the session:
//
//	0       1     type = 0x02
//	1       4     wire session id (first 4 bytes of the 16-byte session id)
//	5       2     low 16 bits of the message counter
//	7       n     ciphertext (AD = bytes 0..6)
//	7+n     16    tag
const (
	typeInit byte = 0x01
	typeMsg  byte = 0x02

	// sessionIDSize is the session id a node keys its sessions by (storage
	// key, init signature); wireIDSize is the prefix of it that confirmed
	// messages carry. Wire ids may collide among a node's sessions: the
	// receiver tries each session with that prefix and the tag decides.
	sessionIDSize = 16
	wireIDSize    = 4
	tagSize       = chacha20poly1305.Overhead // 16

	offEpoch     = 1
	offCiphertxt = offEpoch + 4                        // 5
	offSender    = offCiphertxt + xwing.CiphertextSize // 1125
	senderPlain  = 32 + 32 + 64                        // ed25519 key, ML-DSA hash, signature
	senderSize   = senderPlain + tagSize               // 144
	offInitCtr   = offSender + senderSize              // 1269
	initHdrSize  = offInitCtr + 4                      // 1273
	initOverhead = initHdrSize + tagSize               // 1289

	offMsgSID   = 1
	offMsgCtr   = offMsgSID + wireIDSize // 5
	msgHdrSize  = offMsgCtr + 2          // 7
	msgOverhead = msgHdrSize + tagSize   // 23
)

// wireID returns the prefix of a session id that confirmed messages carry.
func wireID(sid [sessionIDSize]byte) [wireIDSize]byte {
	var w [wireIDSize]byte
	copy(w[:], sid[:])
	return w
}

// sealedInit is a parsed init-form payload; slices alias the input.
type sealedInit struct {
	epoch    uint32
	ct       []byte // X-Wing ciphertext
	sender   []byte // sealed sender block
	counter  uint64
	senderAD []byte // AD of the sender block: bytes 0..1124
	ad       []byte // AD of the message: bytes 0..1272
	body     []byte // ciphertext || tag
}

func parseInit(b []byte) (sealedInit, error) {
	if len(b) < initOverhead {
		return sealedInit{}, fmt.Errorf("%w: session init is %d bytes, shorter than its %d-byte header and tag", ErrMalformed, len(b), initOverhead)
	}
	return sealedInit{
		epoch:    binary.BigEndian.Uint32(b[offEpoch:]),
		ct:       b[offCiphertxt:offSender],
		sender:   b[offSender:offInitCtr],
		counter:  uint64(binary.BigEndian.Uint32(b[offInitCtr:])),
		senderAD: b[:offSender],
		ad:       b[:initHdrSize],
		body:     b[initHdrSize:],
	}, nil
}

// sealedMsg is a parsed message-form payload; slices alias the input.
type sealedMsg struct {
	sid       [wireIDSize]byte
	truncated uint16
	ad        []byte
	body      []byte
}

func parseMsg(b []byte) (sealedMsg, error) {
	if len(b) < msgOverhead {
		return sealedMsg{}, fmt.Errorf("%w: message is %d bytes, shorter than its %d-byte header and tag", ErrMalformed, len(b), msgOverhead)
	}
	m := sealedMsg{
		truncated: binary.BigEndian.Uint16(b[offMsgCtr:]),
		ad:        b[:msgHdrSize],
		body:      b[msgHdrSize:],
	}
	copy(m.sid[:], b[offMsgSID:offMsgCtr])
	return m, nil
}

// appendMsgHeader appends the message-form header for counter n of the
// session whose id is sid (only its wire prefix is sent).
func appendMsgHeader(dst []byte, sid [sessionIDSize]byte, n uint64) []byte {
	dst = append(dst, typeMsg)
	dst = append(dst, sid[:wireIDSize]...)
	return binary.BigEndian.AppendUint16(dst, uint16(n))
}

// reconstructCounter recovers a full counter from its low 16 bits: the value
// closest to expected (the receiver's next counter) with those low bits, as
// QUIC does for packet numbers (RFC 9000, appendix A.3).
func reconstructCounter(expected uint64, truncated uint16) uint64 {
	const win = 1 << 16
	const hwin = win / 2
	candidate := (expected &^ (win - 1)) | uint64(truncated)
	if candidate+hwin <= expected {
		return candidate + win
	}
	if candidate > expected+hwin && candidate >= win {
		return candidate - win
	}
	return candidate
}

// nonceFor is the AEAD nonce of message counter n: 4 zero bytes then n.
func nonceFor(n uint64) []byte {
	var nonce [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(nonce[4:], n)
	return nonce[:]
}
