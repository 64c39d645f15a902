// Package call is Tern's 1:1 voice calling: signalling as sealed bundles
// and live audio as end-to-end encrypted QUIC datagrams.
//
// Signalling (invite, accept, decline, hang-up, busy; see Signal) travels as
// message.Call messages through chat.SendMessage: sealed by the pair's
// session and stored and forwarded like any bundle, so a call placed during
// an outage is still shown as a missed call when its bundles arrive. An
// invite older than MissedAfter never rings: it is recorded as missed.
//
// Audio never travels in bundles. The browser encodes Opus and hands plain
// frames to its own daemon over the loopback media socket; the daemon seals
// each frame (see the frame format in media.go) and sends it with the
// router's SendVoice, which uses only internet or LAN links: never a radio
// or amateur link. Before a call rings, the caller's daemon checks that such
// a path exists and otherwise says why the call cannot start.
//
// Media keys: each side makes a fresh random 32-byte key for the call, sends
// it to the other inside its invite or accept (so the key travels sealed by
// the pair's end-to-end session and never appears anywhere else), and
// encrypts its own frames with it. Keys live only in memory and die with the
// call. This is simpler than exporting a key from the session ratchet (the
// two sides may hold different newest sessions after a rekey) and as strong:
// it inherits the session's authentication and secrecy.
//
// Calls move through the states ringing, active, ended and missed; every
// call leaves a Record in the history, shown in the conversation.
package call

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
)

// Timing of calls.
const (
	// RingTimeout is how long a call rings before the caller gives up.
	RingTimeout = 60 * time.Second
	// MissedAfter: an invite that spent longer than this in transit is
	// recorded as a missed call and never rings.
	MissedAfter = 60 * time.Second
	// MediaTimeout ends an active call when no audio arrived for this long
	// (the peer vanished without a hang-up reaching us).
	MediaTimeout = 20 * time.Second
)

// Call states.
const (
	StateRinging = "ringing"
	StateActive  = "active"
	StateEnded   = "ended"
	StateMissed  = "missed"
)

// Record is one call in the history.
type Record struct {
	ID       string `json:"id"`
	Peer     string `json:"peer"`
	PeerName string `json:"peer_name,omitempty"`
	Incoming bool   `json:"incoming"`
	State    string `json:"state"`
	// Started is when the call was placed (unix ms, this node's clock; for
	// an incoming call, when it arrived minus its time in transit).
	Started  int64 `json:"started"`
	Answered int64 `json:"answered,omitempty"`
	Ended    int64 `json:"ended,omitempty"`
	// Reason says how the call ended, or why it could not start.
	Reason string `json:"reason,omitempty"`
	Codec  string `json:"codec,omitempty"`
}

// Event is sent to subscribers when a call changes.
type Event struct {
	Type string `json:"type"` // "call"
	Call Record `json:"call"`
}

// Errors the API maps to answers.
var (
	// ErrVoiceUnavailable is matched (errors.Is) by the error that says why
	// a call cannot carry audio now (no internet or LAN path, only a radio
	// link); its text is the reason alone, ready to show.
	ErrVoiceUnavailable = errors.New("voice unavailable")
	// ErrInCall: a call is already ringing or active.
	ErrInCall = errors.New("already in a call")
	// ErrNoCall: no such call is ringing or active.
	ErrNoCall = errors.New("no such call in progress")
)

// unavailable is the reason voice cannot go; it is ErrVoiceUnavailable.
type unavailable string

func (u unavailable) Error() string        { return string(u) }
func (u unavailable) Is(target error) bool { return target == ErrVoiceUnavailable }

// Chat sends sealed application messages and names contacts; *chat.App is one.
type Chat interface {
	SendMessage(to crypto.Address, m *message.Message, opt chat.SendOptions) (*bundle.Bundle, error)
	Resolve(who string) (chat.Contact, *crypto.Card, error)
}

// Voice is the router's voice relay; *router.Router is one. SendVoice never
// blocks; VoicePath says whether a frame could leave now (the same errors);
// OnVoice's handler runs on a link reader and must not block.
type Voice interface {
	SendVoice(dest bundle.Addr, payload []byte) error
	VoicePath(dest bundle.Addr) error
	OnVoice(h func(from bundle.Addr, payload []byte))
}

// KV is the durable history bucket: Put is on disk when it returns; Get
// returns nil, nil for a missing key. *store.KV is one.
type KV interface {
	Get(key []byte) ([]byte, error)
	Put(key, value []byte) error
	ForEach(fn func(k, v []byte) error) error
}

// Config wires the call application.
type Config struct {
	Chat    Chat
	Voice   Voice
	History KV
	Now     func() time.Time
	Rand    io.Reader
	Logger  *slog.Logger
}

// App is the call application of one node: at most one call at a time.
type App struct {
	cfg  Config
	cur  atomic.Pointer[live] // the call ringing or active, for the media path
	stop context.CancelFunc
	done chan struct{}

	mu   sync.Mutex // state transitions and records
	feed *chat.Feed[Event]

	unknownFrames atomic.Uint64
}

// live is the call in progress.
type live struct {
	id       ID
	peer     crypto.Address
	caller   bool
	rec      Record        // guarded by App.mu
	deadline time.Time     // while ringing; guarded by App.mu
	myKey    [KeySize]byte // encrypts this side's frames
	peerKey  [KeySize]byte // the peer's, from its invite or accept
	base     time.Time     // start of this side's call clock

	mu           sync.Mutex // the media state below
	ended        bool
	tx           *sealer
	rx           *opener
	rxs          rxState
	sent         uint64
	sendFailures uint64
	sendErr      error // why the latest frame could not leave, nil once one did
	stream       *Stream
}

func (c *live) clock(now time.Time) uint32 { return uint32(now.Sub(c.base).Microseconds()) }

// New returns the call application, marks calls a restart interrupted as
// ended or missed, and starts the timer that ends unanswered and silent
// calls. It takes over cfg.Voice's OnVoice handler.
func New(cfg Config) (*App, error) {
	if cfg.Chat == nil || cfg.Voice == nil || cfg.History == nil {
		return nil, errors.New("call: Chat, Voice and History are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &App{cfg: cfg, feed: chat.NewFeed[Event](64), done: make(chan struct{})}
	if err := a.recover(); err != nil {
		return nil, err
	}
	cfg.Voice.OnVoice(a.onVoice)
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	go func() {
		defer close(a.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.Sweep()
			}
		}
	}()
	return a, nil
}

// recover ends the calls a crash or restart left ringing or active.
func (a *App) recover() error {
	var stale []Record
	err := a.cfg.History.ForEach(func(_, v []byte) error {
		var r Record
		if json.Unmarshal(v, &r) == nil && (r.State == StateRinging || r.State == StateActive) {
			stale = append(stale, r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("call: reading the call history: %w", err)
	}
	now := a.cfg.Now().UnixMilli()
	for _, r := range stale {
		if r.Incoming && r.State == StateRinging {
			r.State = StateMissed
		} else {
			r.State = StateEnded
		}
		r.Ended, r.Reason = now, "interrupted: tern was restarted"
		if err := a.save(r); err != nil {
			return err
		}
	}
	return nil
}

// Close hangs up a call in progress (the hang-up is queued as a bundle)
// and stops the timer.
func (a *App) Close() {
	if c := a.cur.Load(); c != nil {
		a.Hangup(c.id)
	}
	a.stop()
	<-a.done
}

func (a *App) peerName(p crypto.Address) string {
	c, _, err := a.cfg.Chat.Resolve(p.String())
	if err != nil {
		return ""
	}
	return c.Name
}

// nameOr is the contact's name, or the short address.
func (a *App) nameOr(p crypto.Address) string {
	if n := a.peerName(p); n != "" {
		return n
	}
	return p.Short()
}

// Explain turns the router's reason voice cannot reach peer into words for
// the user.
func (a *App) Explain(err error, peer crypto.Address) string {
	who := a.nameOr(peer)
	switch {
	case errors.Is(err, router.ErrVoiceRadioOnly):
		return fmt.Sprintf("Voice needs an internet or LAN path: the only path to %s now is a radio link, which cannot carry live audio.", who)
	case errors.Is(err, router.ErrNoVoicePath):
		return fmt.Sprintf("%s cannot be reached over the internet or a LAN right now (live audio is never stored for later).", who)
	}
	return err.Error()
}

func (a *App) send(peer crypto.Address, s Signal) error {
	data, err := s.Marshal()
	if err != nil {
		return err
	}
	if _, err := a.cfg.Chat.SendMessage(peer, &message.Message{Type: message.Call, Data: data}, chat.SendOptions{}); err != nil {
		return fmt.Errorf("%s to %s: %w", s.Kind, a.nameOr(peer), err)
	}
	return nil
}

func (a *App) save(r Record) error {
	id, err := ParseID(r.ID)
	if err != nil {
		return err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := a.cfg.History.Put(id[:], v); err != nil {
		return fmt.Errorf("saving call %s: %w", r.ID, err)
	}
	return nil
}

func (a *App) load(id ID) (Record, bool, error) {
	v, err := a.cfg.History.Get(id[:])
	if err != nil || v == nil {
		return Record{}, false, err
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return Record{}, false, fmt.Errorf("call %s: history record is damaged: %w", id, err)
	}
	return r, true, nil
}

// saveAndPublish stores r and tells subscribers.
func (a *App) saveAndPublish(r Record) error {
	if err := a.save(r); err != nil {
		return err
	}
	a.publish(Event{Type: "call", Call: r})
	return nil
}

func (a *App) newKey() ([KeySize]byte, error) {
	var k [KeySize]byte
	if _, err := io.ReadFull(a.cfg.Rand, k[:]); err != nil {
		return k, fmt.Errorf("making a media key: %w", err)
	}
	return k, nil
}

// Start calls who (a contact name or address). When voice cannot reach
// them (no internet or LAN path) it returns the attempt's Record and an
// error wrapping ErrVoiceUnavailable that says why; the callee is then sent
// a missed-call notice, which travels as a bundle by whatever path exists.
func (a *App) Start(who string) (Record, error) {
	c, _, err := a.cfg.Chat.Resolve(who)
	if err != nil {
		return Record{}, err
	}
	peer, err := crypto.ParseAddress(c.Address)
	if err != nil {
		return Record{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.cur.Load(); cur != nil {
		return Record{}, fmt.Errorf("%w with %s: hang up first", ErrInCall, a.nameOr(cur.peer))
	}
	var id ID
	if _, err := io.ReadFull(a.cfg.Rand, id[:]); err != nil {
		return Record{}, fmt.Errorf("making a call id: %w", err)
	}
	now := a.cfg.Now()
	rec := Record{ID: id.String(), Peer: peer.String(), PeerName: c.Name, State: StateRinging, Started: now.UnixMilli(), Codec: Codec}
	if perr := a.cfg.Voice.VoicePath(bundle.Addr(peer)); perr != nil {
		reason := a.Explain(perr, peer)
		rec.State, rec.Ended = StateEnded, now.UnixMilli()
		if err := a.send(peer, Signal{Kind: KindHangup, Call: id, Reason: ReasonUnreachable}); err != nil {
			a.cfg.Logger.Warn("missed-call notice not queued", "to", peer.Short(), "err", err)
		} else {
			reason += fmt.Sprintf(" %s will see a missed call.", a.nameOr(peer))
		}
		rec.Reason = reason
		if err := a.saveAndPublish(rec); err != nil {
			return Record{}, err
		}
		return rec, unavailable(reason)
	}
	key, err := a.newKey()
	if err != nil {
		return Record{}, err
	}
	// History first: if sending fails the attempt is still recorded.
	if err := a.save(rec); err != nil {
		return Record{}, err
	}
	if err := a.send(peer, Signal{Kind: KindInvite, Call: id, Codec: Codec, Key: key}); err != nil {
		rec.State, rec.Ended, rec.Reason = StateEnded, now.UnixMilli(), "not placed: "+err.Error()
		a.saveAndPublish(rec)
		return rec, err
	}
	l := &live{id: id, peer: peer, caller: true, rec: rec, deadline: now.Add(RingTimeout), myKey: key, base: now}
	a.cur.Store(l)
	a.publish(Event{Type: "call", Call: rec})
	a.cfg.Logger.Info("calling", "call", rec.ID, "to", peer.Short())
	return rec, nil
}

// current returns the call in progress if it is id; a.mu is held.
func (a *App) current(id ID) (*live, error) {
	c := a.cur.Load()
	if c == nil || c.id != id {
		return nil, fmt.Errorf("call %s: %w (it may have ended)", id, ErrNoCall)
	}
	return c, nil
}

// Accept answers the incoming call id. It fails, and the call keeps
// ringing, when voice cannot reach the caller now.
func (a *App) Accept(id ID) (Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := a.current(id)
	if err != nil {
		return Record{}, err
	}
	if c.caller || c.rec.State != StateRinging {
		return c.rec, fmt.Errorf("call %s is %s %s: only a ringing incoming call can be accepted", id, direction(c.rec), c.rec.State)
	}
	if perr := a.cfg.Voice.VoicePath(bundle.Addr(c.peer)); perr != nil {
		return c.rec, unavailable(a.Explain(perr, c.peer))
	}
	if err := a.send(c.peer, Signal{Kind: KindAccept, Call: id, Key: c.myKey}); err != nil {
		return c.rec, err
	}
	now := a.cfg.Now()
	c.rec.State, c.rec.Answered = StateActive, now.UnixMilli()
	a.activate(c, now)
	return c.rec, a.saveAndPublish(c.rec)
}

func direction(r Record) string {
	if r.Incoming {
		return "incoming and"
	}
	return "outgoing and"
}

// activate starts the media of c once both keys are known: frames go out
// and come in from now on; a.mu is held.
func (a *App) activate(c *live, now time.Time) {
	myDir, peerDir := byte(dirFromCallee), byte(dirFromCaller)
	if c.caller {
		myDir, peerDir = dirFromCaller, dirFromCallee
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tx = &sealer{aead: newAEAD(c.myKey), dir: myDir, tag: c.id.tag()}
	c.rx = &opener{aead: newAEAD(c.peerKey), dir: peerDir}
	c.rxs.lastRx = now // the silence timer starts now
}

// Decline refuses the incoming call id.
func (a *App) Decline(id ID) (Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := a.current(id)
	if err != nil {
		return Record{}, err
	}
	if c.caller || c.rec.State != StateRinging {
		return c.rec, fmt.Errorf("call %s is %s %s: only a ringing incoming call can be declined (hang up instead)", id, direction(c.rec), c.rec.State)
	}
	if err := a.send(c.peer, Signal{Kind: KindDecline, Call: id}); err != nil {
		a.cfg.Logger.Warn("decline not queued", "call", id.String(), "err", err)
	}
	return a.end(c, StateEnded, "declined")
}

// Hangup ends the call id: cancels it while it rings, ends it when
// active, declines it when it rings here.
func (a *App) Hangup(id ID) (Record, error) {
	a.mu.Lock()
	c, err := a.current(id)
	if err != nil {
		a.mu.Unlock()
		return Record{}, err
	}
	if !c.caller && c.rec.State == StateRinging {
		a.mu.Unlock()
		return a.Decline(id)
	}
	defer a.mu.Unlock()
	if err := a.send(c.peer, Signal{Kind: KindHangup, Call: id, Reason: ReasonHungUp}); err != nil {
		a.cfg.Logger.Warn("hang-up not queued", "call", id.String(), "err", err)
	}
	if c.rec.State == StateRinging {
		return a.end(c, StateEnded, "cancelled before an answer")
	}
	return a.end(c, StateEnded, "you hung up")
}

// end moves c to a final state, stops its media and forgets it; a.mu is held.
func (a *App) end(c *live, state, reason string) (Record, error) {
	c.mu.Lock()
	c.ended = true
	if c.stream != nil {
		c.stream.stop()
		c.stream = nil
	}
	c.mu.Unlock()
	a.cur.CompareAndSwap(c, nil)
	c.rec.State, c.rec.Ended, c.rec.Reason = state, a.cfg.Now().UnixMilli(), reason
	a.cfg.Logger.Info("call ended", "call", c.rec.ID, "peer", c.peer.Short(), "state", state, "reason", reason)
	return c.rec, a.saveAndPublish(c.rec)
}

// Sweep ends calls that rang too long and calls whose audio stopped. A
// background timer runs it every second; tests call it after moving the
// clock.
func (a *App) Sweep() {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.cur.Load()
	if c == nil {
		return
	}
	now := a.cfg.Now()
	switch c.rec.State {
	case StateRinging:
		if now.Before(c.deadline) {
			return
		}
		if c.caller {
			if err := a.send(c.peer, Signal{Kind: KindHangup, Call: c.id, Reason: ReasonNoAnswer}); err != nil {
				a.cfg.Logger.Warn("hang-up not queued", "call", c.rec.ID, "err", err)
			}
			a.end(c, StateEnded, "no answer")
			return
		}
		a.end(c, StateMissed, "")
	case StateActive:
		c.mu.Lock()
		silent := now.Sub(c.rxs.lastRx)
		c.mu.Unlock()
		if silent < MediaTimeout {
			return
		}
		if err := a.send(c.peer, Signal{Kind: KindHangup, Call: c.id, Reason: ReasonLost}); err != nil {
			a.cfg.Logger.Warn("hang-up not queued", "call", c.rec.ID, "err", err)
		}
		a.end(c, StateEnded, fmt.Sprintf("connection lost: no audio from %s for %d s", a.nameOr(c.peer), int(silent.Seconds())))
	}
}

// Current returns the call ringing or active, if any.
func (a *App) Current() (Record, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.cur.Load(); c != nil {
		return c.rec, true
	}
	return Record{}, false
}

// Get returns the call id from the history (the live record while it is
// in progress).
func (a *App) Get(id ID) (Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.cur.Load(); c != nil && c.id == id {
		return c.rec, nil
	}
	r, ok, err := a.load(id)
	if err != nil {
		return Record{}, err
	}
	if !ok {
		return Record{}, fmt.Errorf("call %s: %w", id, ErrNoCall)
	}
	return r, nil
}

// History lists calls, oldest first: with peer (a contact name or address)
// when it is not empty, else all. limit 0 means all.
func (a *App) History(peer string, limit int) ([]Record, error) {
	var want string
	if peer != "" {
		c, _, err := a.cfg.Chat.Resolve(peer)
		if err != nil {
			return nil, err
		}
		want = c.Address
	}
	a.mu.Lock()
	var out []Record
	err := a.cfg.History.ForEach(func(_, v []byte) error {
		var r Record
		if json.Unmarshal(v, &r) != nil {
			return nil
		}
		if want == "" || r.Peer == want {
			out = append(out, r)
		}
		return nil
	})
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started < out[j].Started })
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// Subscribe returns a channel of call events until ctx ends. A subscriber
// more than 64 events behind misses the excess (History stays authoritative).
func (a *App) Subscribe(ctx context.Context) <-chan Event { return a.feed.Subscribe(ctx) }

// publish tells subscribers; a.mu is held by every caller, so events leave
// in the order the calls changed.
func (a *App) publish(e Event) { a.feed.Publish(e) }
