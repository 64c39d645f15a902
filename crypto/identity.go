package crypto

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/cloudflare/circl/kem/xwing"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
)

// SeedSize is the length of an identity's master seed.
const SeedSize = 32

// EpochLength is how long one X-Wing prekey is current.
const EpochLength = 7 * 24 * time.Hour

// Key-derivation labels (HKDF-SHA256 info strings, no salt) for the keys
// derived from the master seed.
const (
	labelEd25519 = "tern/v1/ed25519"
	labelMLDSA   = "tern/v1/mldsa44"
	labelPrekey  = "tern/v1/xwing-prekey/" // followed by the decimal epoch
)

// PrekeyEpoch returns the prekey epoch current at t:
// floor(unix seconds / (7*24*3600)). Times before 1970 map to epoch 0.
func PrekeyEpoch(t time.Time) uint32 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint32(s / int64(EpochLength/time.Second))
}

// Identity is a node's long-term secret: the master seed and the keys derived
// from it. It is immutable and safe for concurrent use.
type Identity struct {
	seed      [SeedSize]byte
	ed        ed25519.PrivateKey
	mldsaPub  []byte
	mldsaPriv *mldsa44.PrivateKey
	mldsaHash [32]byte
	addr      Address
}

// GenerateIdentity creates a new identity from 32 bytes of rand.
func GenerateIdentity(rand io.Reader) (*Identity, error) {
	seed := make([]byte, SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("generate identity: read random seed: %w", err)
	}
	return IdentityFromSeed(seed)
}

// IdentityFromSeed derives the identity of a 32-byte master seed. The same
// seed always gives the same keys and address.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("identity from seed: seed is %d bytes, want %d", len(seed), SeedSize)
	}
	id := &Identity{}
	copy(id.seed[:], seed)
	edSeed, err := hkdf.Key(sha256.New, seed, nil, labelEd25519, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("identity from seed: derive ed25519 key: %w", err)
	}
	id.ed = ed25519.NewKeyFromSeed(edSeed)
	mlSeed, err := hkdf.Key(sha256.New, seed, nil, labelMLDSA, mldsa44.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("identity from seed: derive ML-DSA-44 key: %w", err)
	}
	var ms [mldsa44.SeedSize]byte
	copy(ms[:], mlSeed)
	pub, priv := mldsa44.NewKeyFromSeed(&ms)
	id.mldsaPub = pub.Bytes()
	id.mldsaPriv = priv
	id.mldsaHash = sha256.Sum256(id.mldsaPub)
	id.addr = DeriveAddress(id.ed.Public().(ed25519.PublicKey), id.mldsaHash)
	return id, nil
}

// Seed returns a copy of the master seed. Whoever holds it is this node.
func (id *Identity) Seed() []byte { return append([]byte(nil), id.seed[:]...) }

// Address returns the node address.
func (id *Identity) Address() Address { return id.addr }

// SigningKey returns the Ed25519 private key (for example to sign bundles on
// amateur-radio links, or as the QUIC certificate key).
func (id *Identity) SigningKey() ed25519.PrivateKey { return id.ed }

// PublicKey returns the Ed25519 public key.
func (id *Identity) PublicKey() ed25519.PublicKey { return id.ed.Public().(ed25519.PublicKey) }

// MLDSAPublicKey returns a copy of the packed ML-DSA-44 public key (1312 bytes).
func (id *Identity) MLDSAPublicKey() []byte { return append([]byte(nil), id.mldsaPub...) }

// MLDSAHash returns SHA-256 of the ML-DSA-44 public key.
func (id *Identity) MLDSAHash() [32]byte { return id.mldsaHash }

// PrekeyPublic returns the packed X-Wing public key (1216 bytes) of epoch.
func (id *Identity) PrekeyPublic(epoch uint32) ([]byte, error) {
	_, pub, err := id.prekey(epoch)
	return pub, err
}

// prekey derives the packed X-Wing key pair of epoch.
func (id *Identity) prekey(epoch uint32) (priv, pub []byte, err error) {
	k, err := hkdf.Key(sha256.New, id.seed[:], nil, labelPrekey+strconv.FormatUint(uint64(epoch), 10), xwing.SeedSize)
	if err != nil {
		return nil, nil, fmt.Errorf("derive X-Wing prekey for epoch %d: %w", epoch, err)
	}
	priv, pub = xwing.DeriveKeyPairPacked(k)
	return priv, pub, nil
}
