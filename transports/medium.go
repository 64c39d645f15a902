package transports

import (
	"net/netip"
	"strings"
)

// Kinds of medium a link runs over, as users see them ("sent via LAN").
const (
	MediumInternet    = "internet"     // QUIC to a public address
	MediumLAN         = "lan"          // QUIC on the local network (found by mDNS, or a private or loopback address)
	MediumLoRa        = "lora"         // a LoRa radio (SPI HAT or serial modem)
	MediumPacketRadio = "packet-radio" // amateur packet radio through a KISS TNC
)

// MediumLink is an optional capability of links that know their medium;
// MediumOf prefers it to guessing.
type MediumLink interface {
	// Medium returns one of the Medium* constants, or "" when unknown.
	Medium() string
}

// MediumOf names the medium of l: the link's own answer when it implements
// MediumLink; else a radio link that forbids encryption is packet radio and
// any other radio link is LoRa; else a link whose peer is at an IP address
// is on the LAN when that address is private, link-local or loopback and on
// the internet otherwise. It returns "" when nothing tells (in-memory test
// links).
func MediumOf(l Link) string {
	if m, ok := l.(MediumLink); ok {
		return m.Medium()
	}
	if _, ok := l.(RadioLink); ok {
		if IsClearOnly(l) {
			return MediumPacketRadio
		}
		return MediumLoRa
	}
	if IsClearOnly(l) {
		return MediumPacketRadio
	}
	return mediumOfRemote(l.Peer().Remote)
}

// mediumOfRemote classifies a "host:port" or "quic://host:port" remote.
func mediumOfRemote(remote string) string {
	remote = strings.TrimPrefix(remote, "quic://")
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return ""
	}
	a := ap.Addr().Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() {
		return MediumLAN
	}
	return MediumInternet
}
