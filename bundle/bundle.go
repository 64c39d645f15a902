// Package bundle defines Tern's wire format: the bundle that every link carries,
// its opaque ID, its lifetime and age rules, and (in later files) fragmentation.
//
// A bundle is what a relay sees: routing fields in the clear (destination,
// ID, times, hop limit) and an opaque payload. For data bundles the payload is
// sealed end to end by package crypto and carries the sender's identity inside
// (sealed sender), so a relay learns whom a bundle is for but never who sent it.
// The byte-by-byte layout is in FORMAT.md.
package bundle

// Version is the wire-format version this code writes and accepts.
const Version = 1

// Addr is a node address as it appears on the wire: the 16-byte hash of a
// node's long-term public keys (see package crypto). Package bundle does not
// import crypto; the two types convert directly.
type Addr [16]byte

// ID is an opaque bundle identifier chosen at random by the originator. It is
// the key for dedupe, custody and delivery receipts, and tells a relay nothing.
type ID [16]byte

// Kind says what a bundle is for. Relays route every kind alike except where
// noted.
type Kind uint8

const (
	// KindData carries an end-to-end sealed payload (chat, receipts, files).
	// Relays cannot tell one application message type from another.
	KindData Kind = 0
	// KindCustodyAck is hop-by-hop: the payload lists the IDs that the
	// sending neighbour now holds on disk. Never forwarded.
	KindCustodyAck Kind = 1
	// KindAnnounce is a signed route advertisement from a neighbour. It is
	// one of the two exceptions to sealed sender: it names its signer.
	KindAnnounce Kind = 2
	// KindClearSigned is plaintext signed with the sender's Ed25519 key, for
	// links where encryption is forbidden (amateur radio). The other
	// exception to sealed sender.
	KindClearSigned Kind = 3
	// KindSummary is hop-by-hop: the payload (Summary) lists what the
	// sending neighbour holds, the bundles it knows delivered, and the copy
	// budgets of the bundles it hands over next. Never forwarded. Nodes
	// that predate it reject it as malformed, so a node sends one blindly
	// only when a link comes up, then only to neighbours that sent one.
	KindSummary Kind = 4
)

// Flags are per-bundle bits.
type Flags uint8

const (
	// FlagClockUnsynced is set by an originator whose clock is not known to
	// be right (a Pi with no RTC and no internet). Created is then only a
	// hint and hops rely on Age alone.
	FlagClockUnsynced Flags = 1 << 0
	// FlagOverAirClear allows a data bundle's plaintext twin to be relayed
	// over an amateur-radio link (issue 5); never set silently.
	FlagOverAirClear Flags = 1 << 1
	// FlagDerivedID says ID = DerivedID(Dest, Payload): a radio hop can
	// leave the ID out and the next node recomputes it, saving 16 bytes on
	// air, and no node can pair a known ID with a different payload.
	FlagDerivedID Flags = 1 << 2
	// FlagBulk marks bulk data (a file chunk): the router never puts it on
	// a radio link (transports.RadioLink), where it would take minutes or
	// hours of a shared, duty-cycled channel. A sender that wants it to
	// cross radio anyway (tern file send --over-radio) leaves it unset.
	FlagBulk Flags = 1 << 3
)

// Bundle is the unit that links carry and the store keeps. Encoded as a CBOR
// array in field order with Core Deterministic Encoding (see FORMAT.md).
type Bundle struct {
	_ struct{} `cbor:",toarray"`

	Version uint8
	Kind    Kind
	Flags   Flags
	Dest    Addr
	ID      ID
	// Created is the originator's wall clock at creation, milliseconds since
	// the Unix epoch; 0 when unknown.
	Created int64
	// Age is the milliseconds the bundle has already spent in transit and in
	// stores, advanced by each hop before forwarding (BPv7 bundle-age block).
	Age uint64
	// Lifetime is the milliseconds after creation (by Age) when the bundle
	// expires and every node drops it.
	Lifetime uint64
	// HopLimit is decremented by each forwarding hop; a bundle that arrives
	// with 0 is not forwarded further.
	HopLimit uint8
	Payload  []byte
}
