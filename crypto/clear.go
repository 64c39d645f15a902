package crypto

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// Clear-signed payloads are for links where encryption is forbidden
// (amateur radio: the content must be readable by anyone, and the station
// must be identifiable). They are the one place where the sender travels in
// the clear: anyone can read the message and check who wrote it.
//
// Wire form (CBOR array, Core Deterministic Encoding):
//
//	[ 1,                    version
//	  h'<32>',              sender Ed25519 public key
//	  h'<32>',              SHA-256 of the sender's ML-DSA-44 key (so the address can be checked)
//	  h'<message>',         the application message, in the clear
//	  h'<64>' ]             Ed25519 signature over "tern/v1/clear\x00" || destination (16)
//	                        || Ed25519 key (32) || ML-DSA hash (32) || message
//
// The signature covers the destination so a signed message cannot be
// redirected to someone else; it does not cover hop-by-hop fields (age, hop
// limit) that relays rewrite.

const clearDomain = "tern/v1/clear\x00"

// ErrBadSignature is wrapped when a clear-signed payload does not verify.
var ErrBadSignature = errors.New("bad signature")

type clearWire struct {
	_         struct{} `cbor:",toarray"`
	Version   uint
	Ed25519   []byte
	MLDSAHash []byte
	Message   []byte
	Sig       []byte
}

// clearSigned is what the signature covers: the destination, both halves
// of the sender's address (so the claimed author cannot be changed) and the
// message.
func clearSigned(dest Address, ed, mldsaHash, msg []byte) []byte {
	b := make([]byte, 0, len(clearDomain)+len(dest)+len(ed)+len(mldsaHash)+len(msg))
	b = append(b, clearDomain...)
	b = append(b, dest[:]...)
	b = append(b, ed...)
	b = append(b, mldsaHash...)
	return append(b, msg...)
}

// SignClear returns msg as a clear-signed payload for dest.
func (id *Identity) SignClear(dest Address, msg []byte) ([]byte, error) {
	h := id.MLDSAHash()
	return modes.enc.Marshal(clearWire{
		Version: 1, Ed25519: id.PublicKey(), MLDSAHash: h[:], Message: msg,
		Sig: ed25519.Sign(id.SigningKey(), clearSigned(dest, id.PublicKey(), h[:], msg)),
	})
}

// OpenClear checks a clear-signed payload addressed to dest and returns
// its author's address and the message.
func OpenClear(dest Address, payload []byte) (Address, []byte, error) {
	var w clearWire
	if err := modes.dec.Unmarshal(payload, &w); err != nil {
		return Address{}, nil, fmt.Errorf("%w: clear-signed payload: %w", ErrMalformed, err)
	}
	if w.Version != 1 || len(w.Ed25519) != ed25519.PublicKeySize || len(w.MLDSAHash) != 32 || len(w.Sig) != ed25519.SignatureSize {
		return Address{}, nil, fmt.Errorf("%w: clear-signed payload: version %d or a key or signature of the wrong size", ErrMalformed, w.Version)
	}
	if !ed25519.Verify(w.Ed25519, clearSigned(dest, w.Ed25519, w.MLDSAHash, w.Message), w.Sig) {
		return Address{}, nil, fmt.Errorf("%w: %w: clear-signed message does not verify (altered on the way, or not for this node)", ErrForged, ErrBadSignature)
	}
	return DeriveAddress(w.Ed25519, [32]byte(w.MLDSAHash)), w.Message, nil
}
