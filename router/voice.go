package router

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// Live voice is relayed as datagrams, not bundles: no store, no custody, no
// retries, no queue beyond a few frames per outgoing link. A voice frame
// that cannot leave at once is dropped and counted; a late frame is worth
// nothing to a call. Voice travels only over links that carry datagrams
// (transports.DatagramLink, i.e. QUIC on the internet or the LAN) and never
// over a radio (transports.RadioLink) or a clear-only (amateur) link.
//
// Wire format of a voice datagram, byte by byte:
//
//	offset  size  field
//	0       1     type/version: 0xA1 (high nibble 0xA = voice, low nibble 1 = version 1);
//	              any other value is dropped as "malformed"
//	1       16    destination node address
//	17      1     hop limit: a relay drops a datagram that arrives with 0
//	              and is not for itself, else decrements it and forwards
//	18      n     opaque payload, end-to-end encrypted by the endpoints
//	              (n >= 0; the whole datagram fits the link's MaxDatagramSize,
//	              1150 bytes on QUIC, so n <= 1132 there)
//
// There is no source address: relays see only where a frame goes. The
// endpoints identify each other inside the encrypted payload.
const (
	voiceTypeVersion = 0xA1
	// VoiceHeaderSize is the bytes a voice datagram spends before its payload.
	VoiceHeaderSize = 18
	// VoiceHopLimit is the hop limit SendVoice starts a frame with.
	VoiceHopLimit = 16
	// voiceOutQueue bounds frames waiting for one outgoing link, shared by
	// every call over it (quic-go's own datagram queue also holds 32).
	voiceOutQueue = 32
)

// ErrVoiceRadioOnly is returned (wrapped) by SendVoice when the only live
// path to the destination is a radio or amateur link, where voice never goes.
var ErrVoiceRadioOnly = errors.New("voice needs an internet or LAN path")

// ErrNoVoicePath is returned (wrapped) by SendVoice when there is no live
// path to the destination over links that carry datagrams.
var ErrNoVoicePath = errors.New("no live internet or LAN path for voice")

// Reasons a voice datagram is dropped, as reported in VoiceCounters.Dropped.
const (
	VoiceDropMalformed  = "malformed"    // bad type/version or shorter than the header
	VoiceDropHopLimit   = "hop-limit"    // arrived with hop limit 0, not for this node
	VoiceDropNoFastPath = "no-fast-path" // no live path over a datagram link that is not a radio
	VoiceDropCongested  = "congested"    // the outgoing link's few-frame queue was full
	VoiceDropSendFailed = "send-failed"  // the link refused it (closed, too big)
	VoiceDropNoHandler  = "no-handler"   // for this node, but nobody called OnVoice
)

var voiceDropReasons = [...]string{VoiceDropMalformed, VoiceDropHopLimit, VoiceDropNoFastPath, VoiceDropCongested, VoiceDropSendFailed, VoiceDropNoHandler}

// VoiceCounters are the voice relay's counters (`tern status`).
type VoiceCounters struct {
	Received  uint64            `json:"received"`  // voice datagrams read from links
	Delivered uint64            `json:"delivered"` // handed to the local OnVoice handler
	Forwarded uint64            `json:"forwarded"` // relayed on to a next hop (queued on its link)
	Sent      uint64            `json:"sent"`      // originated here by SendVoice (queued on a link)
	Dropped   map[string]uint64 `json:"dropped_by_reason"`
}

// voiceState is the router's voice relay; its zero value is ready.
type voiceState struct {
	handler atomic.Pointer[func(from bundle.Addr, payload []byte)]

	received, delivered, forwarded, sent atomic.Uint64
	dropped                              [len(voiceDropReasons)]atomic.Uint64

	mu    sync.Mutex
	links map[transports.Link]*voiceLink
}

// voiceLink is one datagram-capable link: a reader goroutine relays what
// arrives, a writer goroutine sends what is queued on out, so a slow next
// hop never holds up the reader.
type voiceLink struct {
	l    transports.Link
	dl   transports.DatagramLink
	out  chan []byte
	done chan struct{} // closed when the link's reader ends
}

func (v *voiceState) drop(reason string) {
	for i, r := range voiceDropReasons {
		if r == reason {
			v.dropped[i].Add(1)
			return
		}
	}
}

// OnVoice sets the function that receives voice frames addressed to this
// node; nil stops delivery (frames are then dropped as "no-handler"). from
// is the neighbour that handed the frame over, not the original sender: the
// wire carries no source, the endpoints authenticate inside the payload.
// The handler runs on the link's reader and must not block: copy the frame
// to the app's own jitter buffer and return. payload is the handler's.
func (r *Router) OnVoice(h func(from bundle.Addr, payload []byte)) {
	if h == nil {
		r.voice.handler.Store(nil)
		return
	}
	r.voice.handler.Store(&h)
}

// VoiceMetrics returns the voice relay's counters.
func (r *Router) VoiceMetrics() VoiceCounters {
	v := &r.voice
	c := VoiceCounters{
		Received: v.received.Load(), Delivered: v.delivered.Load(),
		Forwarded: v.forwarded.Load(), Sent: v.sent.Load(),
		Dropped: make(map[string]uint64, len(voiceDropReasons)),
	}
	for i, reason := range voiceDropReasons {
		if n := v.dropped[i].Load(); n > 0 {
			c.Dropped[reason] = n
		}
	}
	return c
}

// SendVoice sends one voice frame (already end-to-end encrypted) to dest
// over the best live internet or LAN path. It never waits: a frame that
// cannot leave now is dropped with an error. An error wrapping
// ErrVoiceRadioOnly means the only path is a radio link (tell the user
// voice needs an internet or LAN path); ErrNoVoicePath means no live path
// at all; transports.ErrTooBig means the payload does not fit a datagram.
func (r *Router) SendVoice(dest bundle.Addr, payload []byte) error {
	if dest == r.cfg.Self {
		h := r.voice.handler.Load()
		if h == nil {
			return errors.New("voice to this node itself: no local handler (call OnVoice first)")
		}
		(*h)(r.cfg.Self, append([]byte(nil), payload...))
		return nil
	}
	vl, err := r.voicePath(dest, bundle.Addr{})
	if err != nil {
		return err
	}
	if limit := vl.dl.MaxDatagramSize(); VoiceHeaderSize+len(payload) > limit {
		return fmt.Errorf("voice frame to %s: %d payload bytes, the link takes at most %d: %w", addrString(dest), len(payload), limit-VoiceHeaderSize, transports.ErrTooBig)
	}
	d := make([]byte, VoiceHeaderSize+len(payload))
	d[0] = voiceTypeVersion
	copy(d[1:17], dest[:])
	d[17] = VoiceHopLimit
	copy(d[VoiceHeaderSize:], payload)
	select {
	case vl.out <- d:
		r.voice.sent.Add(1)
		return nil
	default:
		r.voice.drop(VoiceDropCongested)
		return fmt.Errorf("voice frame to %s dropped: the link to %s is congested (%d frames waiting)", addrString(dest), addrString(vl.l.Peer().Addr), voiceOutQueue)
	}
}

// parseVoice splits a voice datagram into its fields. It never panics and
// rejects anything that is not a version-1 voice datagram.
func parseVoice(d []byte) (dest bundle.Addr, hops uint8, payload []byte, err error) {
	if len(d) < VoiceHeaderSize {
		return dest, 0, nil, fmt.Errorf("voice datagram of %d bytes is shorter than its %d-byte header", len(d), VoiceHeaderSize)
	}
	if d[0] != voiceTypeVersion {
		return dest, 0, nil, fmt.Errorf("datagram type/version 0x%02x is not voice v1 (0x%02x)", d[0], voiceTypeVersion)
	}
	copy(dest[:], d[1:17])
	return dest, d[17], d[VoiceHeaderSize:], nil
}

// startVoice relays datagrams of l when it is a DatagramLink: called by
// AddLink for every link, it does nothing for links without datagrams.
func (r *Router) startVoice(n *neighbour, l transports.Link) {
	dl, ok := l.(transports.DatagramLink)
	if !ok {
		return
	}
	vl := &voiceLink{l: l, dl: dl, out: make(chan []byte, voiceOutQueue), done: make(chan struct{})}
	v := &r.voice
	v.mu.Lock()
	if v.links == nil {
		v.links = make(map[transports.Link]*voiceLink)
	}
	v.links[l] = vl
	v.mu.Unlock()
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		defer func() {
			v.mu.Lock()
			delete(v.links, l)
			v.mu.Unlock()
			close(vl.done)
		}()
		for {
			d, err := dl.RecvDatagram(r.ctx)
			if err != nil {
				return // closed link or router: AddLink's reader logs it
			}
			r.relayVoice(n.addr, d)
		}
	}()
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-vl.done:
				return
			case <-r.ctx.Done():
				return
			case d := <-vl.out:
				if err := dl.SendDatagram(d); err != nil {
					v.drop(VoiceDropSendFailed)
				}
			}
		}
	}()
}

// relayVoice handles one datagram from neighbour from: deliver it here or
// pass it on at once. It never blocks on the next hop.
func (r *Router) relayVoice(from bundle.Addr, d []byte) {
	v := &r.voice
	v.received.Add(1)
	dest, hops, payload, err := parseVoice(d)
	if err != nil {
		v.drop(VoiceDropMalformed)
		return
	}
	if dest == r.cfg.Self {
		h := v.handler.Load()
		if h == nil {
			v.drop(VoiceDropNoHandler)
			return
		}
		v.delivered.Add(1)
		(*h)(from, payload)
		return
	}
	if hops == 0 {
		v.drop(VoiceDropHopLimit)
		return
	}
	vl, err := r.voicePath(dest, from)
	if err != nil {
		v.drop(VoiceDropNoFastPath)
		return
	}
	if len(d) > vl.dl.MaxDatagramSize() {
		v.drop(VoiceDropSendFailed)
		return
	}
	d[17] = hops - 1
	select {
	case vl.out <- d:
		v.forwarded.Add(1)
	default:
		v.drop(VoiceDropCongested)
	}
}

// voicePath picks the outgoing voice link toward dest, never back to
// exclude: among live routes through neighbours that are up, the lowest
// metric whose neighbour has a datagram link that is neither a radio nor
// clear-only; on that neighbour the link with the shortest round trip,
// then the newest. Stale routes never carry voice. The error says why no
// path exists: only radio links, or no live path at all.
func (r *Router) voicePath(dest, exclude bundle.Addr) (*voiceLink, error) {
	radioOnly := false
	for _, c := range r.table.liveRoutes(dest, exclude) {
		r.mu.Lock()
		n := r.nbrs[c.Via]
		r.mu.Unlock()
		if n == nil {
			continue
		}
		vl, radio := r.voiceLinkOf(n)
		if vl != nil {
			return vl, nil
		}
		radioOnly = radioOnly || radio
	}
	if radioOnly {
		return nil, fmt.Errorf("%w; the only path to %s is a radio link", ErrVoiceRadioOnly, addrString(dest))
	}
	return nil, fmt.Errorf("voice to %s: %w (voice is never stored for later; connect over QUIC or the LAN and try again)", addrString(dest), ErrNoVoicePath)
}

// voiceLinkOf returns n's best link for voice, or nil and whether n is
// reached only over radio or clear-only links.
func (r *Router) voiceLinkOf(n *neighbour) (*voiceLink, bool) {
	n.mu.Lock()
	links := make([]transports.Link, 0, len(n.links))
	for _, ls := range n.links {
		if !ls.silent { // custody acks stopped coming over it: voice would be lost too
			links = append(links, ls.l)
		}
	}
	n.mu.Unlock()
	var best *voiceLink
	bestRTT := math.Inf(1)
	radio := false
	r.voice.mu.Lock()
	defer r.voice.mu.Unlock()
	for i := len(links) - 1; i >= 0; i-- { // newest first
		l := links[i]
		if _, isRadio := l.(transports.RadioLink); isRadio || transports.IsClearOnly(l) {
			radio = true
			continue
		}
		vl := r.voice.links[l]
		if vl == nil {
			continue
		}
		rtt := math.Inf(1)
		if s, ok := l.(transports.StatsLink); ok && s.Stats().RTTMillis > 0 {
			rtt = s.Stats().RTTMillis
		}
		if best == nil || rtt < bestRTT {
			best, bestRTT = vl, rtt
		}
	}
	return best, radio && best == nil
}
