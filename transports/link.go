// Package transports defines the Link contract that every medium implements
// (QUIC, LAN, KISS/AX.25, LoRa), its conformance suite, an in-memory link for
// tests, and the concrete links that are not radios.
//
// A link moves opaque frames (encoded bundles) to and from one neighbour. It
// knows nothing of routing: package router decides what to send where, and
// imports this package, never the other way round.
package transports

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"time"
)

// ErrClosed is returned (wrapped) by Send and Recv once the link is closed,
// locally or by the peer. Callers test for it with errors.Is.
var ErrClosed = errors.New("link closed")

// ErrTooBig is returned (wrapped) by Send for a frame longer than MTU.
var ErrTooBig = errors.New("frame larger than the link MTU")

// Peer says who is at the other end of a link.
type Peer struct {
	// Addr is the neighbour's 16-byte node address.
	Addr [16]byte
	// Authenticated is true when the link proved Addr cryptographically
	// (the QUIC certificate pin). A false Addr is only a claim.
	Authenticated bool
	// Remote is the medium's own name for the peer (host:port, callsign).
	Remote string
}

// Link is an established, bidirectional frame pipe to one neighbour.
//
// Contract:
//   - Send hands one frame to the medium and returns; it does not wait for
//     the peer to read it. It may block for flow control or airtime until ctx
//     is done. Frames longer than MTU fail with ErrTooBig and the link stays
//     usable. Send is safe for concurrent use.
//   - Recv returns the next whole frame, in the order the medium delivered it
//     (reliable links: the order sent). The returned slice belongs to the
//     caller. Recv is called from one goroutine at a time.
//   - Frames are never split or merged: one Send is at most one Recv.
//   - A link may let a small frame overtake a large one sent before it, so
//     that a file transfer does not hold up chat or control traffic (the
//     QUIC link sends frames above 64 KiB on their own stream). Frames of
//     similar size keep their order on reliable links.
//   - After Close (by either side, or when the medium fails) Send and Recv
//     return an error wrapping ErrClosed; Close is idempotent and unblocks
//     pending calls.
//   - Reliability is the medium's: a QUIC link loses nothing while open, a
//     radio link may lose or reorder. The router's custody acks cover both.
type Link interface {
	Send(ctx context.Context, frame []byte) error
	Recv(ctx context.Context) ([]byte, error)
	MTU() int
	Peer() Peer
	Close() error
}

// Stats are counters a link keeps about itself.
type Stats struct {
	FramesIn, FramesOut uint64
	BytesIn, BytesOut   uint64
	// RTTMillis is the smoothed round-trip time, 0 when unknown.
	RTTMillis float64
}

// StatsLink is an optional capability: links that count their traffic.
type StatsLink interface {
	Stats() Stats
}

// ReleaseLink is an optional capability of links that recycle receive
// buffers: after Release(f) the caller must not touch f again, and the link
// may reuse its memory for a later frame. Callers that keep frames simply
// never call it.
type ReleaseLink interface {
	Release(frame []byte)
}

// DatagramLink is an optional capability of links that can also carry
// unreliable, unordered datagrams beside the frame pipe (QUIC RFC 9221),
// used for live voice. SendDatagram may drop, and may block briefly while
// the link's own datagram queue is full.
type DatagramLink interface {
	SendDatagram(b []byte) error
	RecvDatagram(ctx context.Context) ([]byte, error)
	MaxDatagramSize() int
}

// Dialer opens outgoing links for the URL schemes it serves.
type Dialer interface {
	// Schemes are the URL schemes this dialer handles, e.g. "quic".
	Schemes() []string
	// Dial connects to the neighbour named by u and returns an open link.
	// Errors name the problem and the fix (unreachable host, wrong pin).
	Dial(ctx context.Context, u *url.URL) (Link, error)
}

// Listener yields incoming links.
type Listener interface {
	// Accept blocks until a neighbour connects; after Close it returns an
	// error wrapping ErrClosed.
	Accept(ctx context.Context) (Link, error)
	// Addr is the local address in URL form, e.g. "quic://127.0.0.1:4242".
	Addr() string
	Close() error
}

// ClearOnlyLink is an optional capability of links on which encryption is
// forbidden by law (amateur radio). The router never puts an end-to-end
// encrypted bundle (or a KEM ciphertext) on such a link; only signed
// plaintext bundles and hop-by-hop control traffic cross it.
type ClearOnlyLink interface {
	ClearOnly() bool
}

// IsClearOnly reports whether l forbids encryption.
func IsClearOnly(l Link) bool {
	c, ok := l.(ClearOnlyLink)
	return ok && c.ClearOnly()
}

// BroadcastLink is an optional capability of links over a shared channel
// (a radio), where one transmission reaches every neighbour on it.
//
// Contract:
//   - Broadcast transmits frames once, for every neighbour on the channel,
//     not only this link's peer; each hearer receives them, in order, on
//     its own link to the sender (Recv), exactly as if they had been sent
//     there with Send. Nobody acknowledges at the link layer and any hearer
//     may miss them. It returns once the medium took them (queued for
//     airtime, charged to the channel's airtime budget like any data
//     frame), not when they were heard.
//   - A link may accept only some frame sequences for broadcast (radiolink:
//     an aired grant note, bundle.AiredNote, then its bundle, fitting one
//     air frame); others fail with an error wrapping ErrTooBig, and
//     nothing is sent.
//   - Channel identifies the shared channel: the links of one node with
//     equal (==) Channel values reach the same neighbours with one
//     Broadcast. It is comparable and stable while the link is open.
type BroadcastLink interface {
	Broadcast(ctx context.Context, frames ...[]byte) error
	Channel() any
}

// RadioInfo is what a link over a shared radio channel reports to users
// (`tern peers`, the network page).
type RadioInfo struct {
	Radio string `json:"radio"`
	// RSSI (dBm) and SNR (dB) of the neighbour's last frame; NaN unknown.
	RSSI float64 `json:"rssi"`
	SNR  float64 `json:"snr"`
	// AirtimeUsed in the regulatory window and AirtimeRemaining of it.
	AirtimeUsed      time.Duration `json:"airtime_used"`
	AirtimeRemaining time.Duration `json:"airtime_remaining"`
	// NextFree is when the next frame may go; zero: now.
	NextFree time.Time `json:"next_free"`
	// Queued frames waiting for air time.
	Queued          int    `json:"queued"`
	Collisions      uint64 `json:"collisions"`
	FramesIn        uint64 `json:"frames_in"`
	FramesOut       uint64 `json:"frames_out"`
	Retransmissions uint64 `json:"retransmissions"`
	// TxErrors counts frames the radio failed to transmit (a hung chip,
	// a modem gone).
	TxErrors uint64 `json:"tx_errors"`
}

// RadioLink is an optional capability of links over a radio.
type RadioLink interface {
	RadioInfo() RadioInfo
}

// RateLink is an optional capability of links that know their usable bit
// rate (a radio from its modulation, a shaped test link). The router uses
// it to cost paths; links without it count as fast.
type RateLink interface {
	// BitRate is the usable rate in bits per second; 0 when unknown.
	BitRate() float64
}

// AirtimeLink is an optional capability of radio links under a regional
// airtime budget. The router keeps bulk traffic off a radio whose budget
// runs low, so it never starves the channel for chat.
type AirtimeLink interface {
	// AirtimeLeft is the share of the airtime budget still available now,
	// in [0,1]; 1 without a duty-cycle limit.
	AirtimeLeft() float64
}

// MarshalJSON writes unknown (NaN) RSSI and SNR as null: JSON has no NaN.
func (ri RadioInfo) MarshalJSON() ([]byte, error) {
	type plain RadioInfo
	out := struct {
		plain
		RSSI *float64 `json:"rssi"`
		SNR  *float64 `json:"snr"`
	}{plain: plain(ri)}
	if !math.IsNaN(ri.RSSI) {
		out.RSSI = &ri.RSSI
	}
	if !math.IsNaN(ri.SNR) {
		out.SNR = &ri.SNR
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads null RSSI and SNR back as NaN (unknown).
func (ri *RadioInfo) UnmarshalJSON(b []byte) error {
	type plain RadioInfo
	in := struct {
		*plain
		RSSI *float64 `json:"rssi"`
		SNR  *float64 `json:"snr"`
	}{plain: (*plain)(ri)}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	ri.RSSI, ri.SNR = math.NaN(), math.NaN()
	if in.RSSI != nil {
		ri.RSSI = *in.RSSI
	}
	if in.SNR != nil {
		ri.SNR = *in.SNR
	}
	return nil
}
