package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// AddressSize is the length of a node address in bytes.
const AddressSize = 16

// Address names a node: the first 16 bytes of
// SHA-256("tern/v1/address" || Ed25519 public key || SHA-256(ML-DSA-44 public key)).
// Hashing the ML-DSA key first lets a peer check an address from the Ed25519
// key plus a 32-byte hash, without the 1312-byte ML-DSA key.
type Address [AddressSize]byte

const addressLabel = "tern/v1/address"

// DeriveAddress computes the address of the identity whose Ed25519 public key
// is ed and whose ML-DSA-44 public key hashes (SHA-256) to mldsaHash.
func DeriveAddress(ed ed25519.PublicKey, mldsaHash [32]byte) Address {
	h := sha256.New()
	h.Write([]byte(addressLabel))
	h.Write(ed)
	h.Write(mldsaHash[:])
	var a Address
	copy(a[:], h.Sum(nil))
	return a
}

// String returns the address as 32 lowercase hex characters.
func (a Address) String() string { return hex.EncodeToString(a[:]) }

// Short returns the first 8 hex characters, for display only: it is not
// unique enough to identify a node.
func (a Address) Short() string { return hex.EncodeToString(a[:4]) }

// IsZero reports whether a is the all-zero address (never a real node).
func (a Address) IsZero() bool { return a == Address{} }

// ParseAddress parses the 32-hex-character form produced by String. Upper
// case hex digits are accepted too.
func ParseAddress(s string) (Address, error) {
	var a Address
	if len(s) != 2*AddressSize {
		return a, fmt.Errorf("parse address %q: want %d hex characters, got %d", truncate(s, 40), 2*AddressSize, len(s))
	}
	if _, err := hex.Decode(a[:], []byte(s)); err != nil {
		return Address{}, fmt.Errorf("parse address %q: not hex: %w", s, err)
	}
	return a, nil
}

// truncate shortens s for error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
