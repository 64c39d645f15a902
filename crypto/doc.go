// Package crypto holds Tern's node identity, signed contact cards, the short
// authentication string people compare to rule out a man in the middle, and
// the pairwise end-to-end sessions (Box) that seal bundle payloads.
//
// An Identity is derived from one 32-byte master seed: an Ed25519 key, an
// ML-DSA-44 key and one X-Wing (X25519 + ML-KEM-768) prekey per week. Its
// Address is a 16-byte hash of the long-term public keys. A Card is the signed,
// CBOR-encoded public half that people exchange as a "tern:" URI.
//
// A Box seals payloads with sealed-sender sessions: the first messages of a
// session carry an X-Wing encapsulation to the recipient's prekey; once the
// sender has heard back, a message adds only 23 bytes (type, a 4-byte wire
// session id, a 16-bit implicit counter and a 16-byte ChaCha20-Poly1305 tag).
// The byte layout is documented in FORMAT.md beside this file.
//
// A card also has a compact form (about 1.4 KB, a 1.9 K-character URI) for
// QR codes: the ML-DSA-44 key is replaced by its hash and only an Ed25519
// signature is kept. It gives the same address and can start a session.
//
// This package imports no other package of the repository.
package crypto
