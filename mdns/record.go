// Package mdns finds Tern nodes on the local network with DNS-SD over
// multicast DNS (RFC 6762/6763), so that people on one Wi-Fi with no
// internet find each other without typing addresses.
//
// A node announces the service _tern._udp.local. Its TXT record carries
// what a peer needs to connect and to verify whom it reached:
//
//	v=1                      protocol version (Version)
//	id=<32 hex digits>       the node address
//	port=<1..65535>          the UDP port of its QUIC listener
//	card=<16 hex digits>     the first 8 bytes of SHA-256 of its contact card
//
// Nothing in an announcement is trusted: the caller dials the announced
// address pinned to the announced identity, so a spoofed announcement can
// only make it dial someone who then fails the identity check.
//
// Service announces and browses (see Mode) on every up, multicast-capable
// interface, restarting when the interface set changes, and reports peers
// that appear, change and leave. It is built on github.com/grandcat/zeroconf
// v1.0.0, whose browser reports each service instance once per browse and
// stops querying after the first answer, drops goodbye packets (TTL 0)
// silently and never reports a record that expired. Service therefore
// browses afresh every Config.Rebrowse and considers a peer gone when no
// answer refreshed it for Config.Stale (or its TTL, if shorter).
package mdns

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Version is the announcement format this package speaks (TXT key v).
const Version = 1

// ServiceType is the DNS-SD service type Tern nodes announce.
const ServiceType = "_tern._udp"

// Limits on what a TXT record may hold; anything larger is hostile or
// broken and is ignored.
const (
	MaxTXTStrings = 16  // key=value strings in one TXT record
	MaxTXTBytes   = 400 // total bytes of all strings
)

// Mode is the privacy setting of LAN discovery.
type Mode int

// The modes, from most to least private.
const (
	Off    Mode = iota // no mDNS at all
	Browse             // find others, do not announce this node
	On                 // announce and browse
)

// ParseMode reads "on", "browse" or "off".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on":
		return On, nil
	case "browse":
		return Browse, nil
	case "off":
		return Off, nil
	}
	return Off, fmt.Errorf("mdns mode %q: use on (announce and browse), browse (find others without announcing) or off", s)
}

func (m Mode) String() string {
	switch m {
	case On:
		return "on"
	case Browse:
		return "browse"
	}
	return "off"
}

// Record is what one node announces about itself.
type Record struct {
	Version  int
	Addr     [16]byte // node address
	Port     int      // UDP port of the QUIC listener
	CardHash [8]byte  // first 8 bytes of SHA-256 of the contact card
}

// TXT returns the record as DNS-SD TXT strings.
func (r Record) TXT() []string {
	return []string{
		"v=" + strconv.Itoa(r.Version),
		"id=" + hex.EncodeToString(r.Addr[:]),
		"port=" + strconv.Itoa(r.Port),
		"card=" + hex.EncodeToString(r.CardHash[:]),
	}
}

// ErrVersion is wrapped by ParseTXT when a peer speaks another version.
var ErrVersion = errors.New("unsupported announcement version")

// ParseTXT decodes and strictly checks a TXT record. Unknown keys are
// ignored (later versions may add some); missing, repeated or malformed
// known keys, oversized records and ports out of range are errors.
func ParseTXT(txt []string) (Record, error) {
	var r Record
	if len(txt) > MaxTXTStrings {
		return r, fmt.Errorf("TXT record has %d strings, at most %d allowed", len(txt), MaxTXTStrings)
	}
	total := 0
	for _, s := range txt {
		total += len(s)
	}
	if total > MaxTXTBytes {
		return r, fmt.Errorf("TXT record is %d bytes, at most %d allowed", total, MaxTXTBytes)
	}
	seen := map[string]bool{}
	for _, s := range txt {
		k, v, ok := strings.Cut(s, "=")
		k = strings.ToLower(k)
		if !ok || k == "" {
			continue // a boolean attribute or an empty string: not ours
		}
		switch k {
		case "v", "id", "port", "card":
		default:
			continue
		}
		if seen[k] {
			return r, fmt.Errorf("TXT key %q appears twice", k)
		}
		seen[k] = true
		switch k {
		case "v":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || len(v) > 4 {
				return r, fmt.Errorf("TXT v=%q is not a version number", v)
			}
			r.Version = n
		case "id":
			if err := decodeHex(r.Addr[:], v); err != nil {
				return r, fmt.Errorf("TXT id=%q is not a node address (want 32 hex digits)", v)
			}
		case "port":
			n, err := strconv.Atoi(v)
			if err != nil || len(v) > 5 || n < 1 || n > 65535 {
				return r, fmt.Errorf("TXT port=%q is not a UDP port (1-65535)", v)
			}
			r.Port = n
		case "card":
			if err := decodeHex(r.CardHash[:], v); err != nil {
				return r, fmt.Errorf("TXT card=%q is not a card hash (want 16 hex digits)", v)
			}
		}
	}
	for _, k := range []string{"v", "id", "port", "card"} {
		if !seen[k] {
			return r, fmt.Errorf("TXT record lacks %s=", k)
		}
	}
	if r.Version != Version {
		return r, fmt.Errorf("%w: v=%d, this node speaks v=%d (update one of the two)", ErrVersion, r.Version, Version)
	}
	if r.Addr == ([16]byte{}) {
		return r, errors.New("TXT id is all zeros")
	}
	return r, nil
}

func decodeHex(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return errors.New("wrong length")
	}
	_, err := hex.Decode(dst, []byte(s))
	return err
}
