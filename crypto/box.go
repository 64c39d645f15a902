package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cloudflare/circl/kem/xwing"
	"golang.org/x/crypto/chacha20poly1305"
)

// Errors wrapped by Seal and Open. Routers count ErrReplay and ErrForged
// separately.
var (
	// ErrNoSession: no session with the peer (Seal without a card), or a
	// message names a session this node does not have.
	ErrNoSession = errors.New("no end-to-end session")
	// ErrReplay: the message was already opened, or is too old to tell.
	ErrReplay = errors.New("replayed message")
	// ErrForged: authentication failed: the payload was altered, forged, or
	// is not addressed to this node.
	ErrForged = errors.New("forged or altered message")
	// ErrMalformed: the payload cannot be parsed.
	ErrMalformed = errors.New("malformed sealed payload")
	// ErrStalePrekey: a session init uses a prekey epoch this node no longer
	// (or does not yet) accept; the sender needs a fresh card.
	ErrStalePrekey = errors.New("stale prekey")
	// ErrTooOld: the message is older than the receive window (it also
	// wraps ErrReplay, since a replay cannot be told apart).
	ErrTooOld = errors.New("message older than the receive window")
	// ErrTooFarAhead: the message's counter is more than MaxCounterJump
	// ahead of the next expected one. It is refused before any key is
	// derived; it also wraps ErrForged, since a forgery cannot be told
	// apart. A genuine one opens later, once earlier messages have moved
	// the window up to it; if that many were lost for good, the sender must
	// call Rekey.
	ErrTooFarAhead = errors.New("message counter too far ahead")
)

// KV is a durable key-value bucket. Put and Delete are on disk (fsync) when
// they return. Get returns nil, nil for a missing key. ForEach visits every
// pair; fn must not call the KV. Slices passed to fn are valid only during
// the call.
type KV interface {
	Get(key []byte) ([]byte, error)
	Put(key, value []byte) error
	Delete(key []byte) error
	ForEach(fn func(k, v []byte) error) error
}

// Opened is a payload opened by Box.Open.
type Opened struct {
	From       Address // authenticated sender
	Plaintext  []byte
	NewSession bool // this payload started a session
}

// Box seals and opens end-to-end payloads for one identity and keeps its
// sessions in a KV. It is safe for concurrent use.
type Box struct {
	id   *Identity
	kv   KV
	rand io.Reader
	now  func() time.Time

	mu       sync.Mutex
	sessions map[[sessionIDSize]byte]*session
	byWire   map[[wireIDSize]byte][]*session // by the id prefix messages carry
	byCt     map[[16]byte]*session           // responder sessions by init ciphertext hash
	newest   map[Address]*session            // the session each peer is sent on
	gen      uint64
	prekeys  map[uint32][]byte // X-Wing private keys by epoch

	// Group persistence of receive state (see flushUntil): dirty sessions
	// wait for the next flush; dirtyGen counts state changes, flushedGen
	// the last one on disk. flushMu serialises flushes so a later snapshot
	// never lands before an earlier one.
	dirty      map[[sessionIDSize]byte]*session
	dirtyGen   uint64
	flushMu    sync.Mutex
	flushedGen uint64
	failedFrom uint64 // changes in (failedFrom, failedGen] were undone after a failed flush
	failedGen  uint64
	failErr    error

	// trace, when set (tests), sees every (key, nonce) Seal uses.
	trace func(key [32]byte, nonce []byte)
	// openHMACs counts the chain and message keys Open derived (tests
	// check the cost of forged messages with it).
	openHMACs uint64
}

// NewBox loads the sessions persisted in kv. rand feeds X-Wing
// encapsulations; now is the clock used for prekey epochs and card expiry.
func NewBox(id *Identity, kv KV, rand io.Reader, now func() time.Time) (*Box, error) {
	if id == nil || kv == nil || rand == nil || now == nil {
		return nil, errors.New("new box: identity, KV, rand and clock are all required")
	}
	b := &Box{
		id: id, kv: kv, rand: rand, now: now,
		sessions: map[[sessionIDSize]byte]*session{},
		byWire:   map[[wireIDSize]byte][]*session{},
		byCt:     map[[16]byte]*session{},
		newest:   map[Address]*session{},
		prekeys:  map[uint32][]byte{},
		dirty:    map[[sessionIDSize]byte]*session{},
	}
	cur := PrekeyEpoch(now())
	var expired [][]byte
	err := kv.ForEach(func(k, v []byte) error {
		switch {
		case len(k) == 1+sessionIDSize && k[0] == 's':
			s, err := unmarshalSession(v)
			if err != nil {
				return fmt.Errorf("session %x: %w", k[1:], err)
			}
			s.saved = append([]byte(nil), v...)
			b.sessions[s.id] = s
		case len(k) == 17 && k[0] == 't' && len(v) == 4:
			if binary.BigEndian.Uint32(v)+2 < cur {
				expired = append(expired, append([]byte(nil), k...))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("new box: load sessions (the session store is damaged; removing it forces peers to start new sessions): %w", err)
	}
	for _, s := range b.sessions {
		b.index(s)
	}
	for _, k := range expired {
		if err := kv.Delete(k); err != nil {
			return nil, fmt.Errorf("new box: prune replay record: %w", err)
		}
	}
	return b, nil
}

// index adds a loaded or new session to the lookup maps.
func (b *Box) index(s *session) {
	b.sessions[s.id] = s
	w := wireID(s.id)
	if !slices.Contains(b.byWire[w], s) {
		b.byWire[w] = append(b.byWire[w], s)
	}
	if !s.initiator {
		b.byCt[s.ctHash] = s
	}
	if n := b.newest[s.peer]; n == nil || s.gen > n.gen {
		b.newest[s.peer] = s
	}
	b.gen = max(b.gen, s.gen)
}

// Overhead returns the bytes Seal adds to a plaintext on a confirmed session.
func (b *Box) Overhead() int { return msgOverhead }

// HasSession reports whether Seal to peer works without a card.
func (b *Box) HasSession(peer Address) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.newest[peer] != nil
}

// Seal encrypts plaintext end to end for to. card may be nil when a session
// with to exists; otherwise it starts one (ErrNoSession without it).
func (b *Box) Seal(to Address, card *Card, plaintext []byte) ([]byte, error) {
	if to == b.id.addr {
		return nil, fmt.Errorf("seal: %s is this node's own address", to)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.newest[to]
	isNew := false
	if s == nil {
		if card == nil {
			return nil, fmt.Errorf("seal to %s: %w: pass the peer's contact card to start one", to, ErrNoSession)
		}
		var err error
		if s, err = b.startSession(to, card); err != nil {
			return nil, fmt.Errorf("seal to %s: %w", to, err)
		}
		isNew = true
	}
	out, err := b.sealOn(s, plaintext, isNew)
	if err != nil {
		return nil, fmt.Errorf("seal to %s: %w", to, err)
	}
	return out, nil
}

// Rekey starts a fresh session with to from its card, even if one exists,
// and sends on it from now on (older sessions still open late messages).
func (b *Box) Rekey(to Address, card *Card) error {
	if to == b.id.addr {
		return fmt.Errorf("rekey: %s is this node's own address", to)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.startSession(to, card)
	if err != nil {
		return fmt.Errorf("rekey %s: %w", to, err)
	}
	if err := b.register(s); err != nil {
		return fmt.Errorf("rekey %s: %w", to, err)
	}
	return nil
}

// startSession encapsulates to the card's prekey and builds an unregistered
// initiator session.
func (b *Box) startSession(to Address, card *Card) (*session, error) {
	if card.Address() != to {
		return nil, fmt.Errorf("the card given is for %s, not %s", card.Address(), to)
	}
	now := b.now()
	if now.Unix() >= card.Expires {
		return nil, fmt.Errorf("%w: the card of %q expired on %s: ask for a fresh card",
			ErrCardExpired, card.Name, time.Unix(card.Expires, 0).UTC().Format("2006-01-02"))
	}
	if cur := PrekeyEpoch(now); card.PrekeyEpoch+2 < cur {
		return nil, fmt.Errorf("%w: the card of %q carries the prekey of epoch %d, the peer accepts %d-%d only: ask for a fresh card",
			ErrStalePrekey, card.Name, card.PrekeyEpoch, cur-2, cur)
	}
	if len(card.Prekey) != xwing.PublicKeySize {
		return nil, fmt.Errorf("%w: prekey is %d bytes, want %d", ErrCardInvalid, len(card.Prekey), xwing.PublicKeySize)
	}
	seed := make([]byte, xwing.EncapsulationSeedSize)
	if _, err := io.ReadFull(b.rand, seed); err != nil {
		return nil, fmt.Errorf("read randomness for X-Wing: %w", err)
	}
	shared, ct, err := xwing.Encapsulate(card.Prekey, seed)
	if err != nil {
		return nil, fmt.Errorf("%w: X-Wing prekey rejected: %v", ErrCardInvalid, err)
	}
	keys, err := deriveSessionKeys(shared, to)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, offInitCtr)
	hdr[0] = typeInit
	binary.BigEndian.PutUint32(hdr[offEpoch:], card.PrekeyEpoch)
	copy(hdr[offCiphertxt:], ct)
	block := make([]byte, 0, senderPlain)
	block = append(block, b.id.PublicKey()...)
	block = append(block, b.id.mldsaHash[:]...)
	block = append(block, ed25519.Sign(b.id.ed, initSigMessage(card.PrekeyEpoch, ct, to, keys.id))...)
	aead, err := chacha20poly1305.New(keys.sender[:])
	if err != nil {
		return nil, fmt.Errorf("sender block cipher: %w", err)
	}
	aead.Seal(hdr[offSender:offSender], nonceFor(0), block, hdr[:offSender])
	s := &session{
		id: keys.id, peer: to, initiator: true, root: keys.root, created: now.Unix(),
		initHdr: hdr, ctHash: ctHash(ct), epoch: card.PrekeyEpoch,
		send:    chain{key: keys.i2r},
		lease:   chain{key: keys.i2r},
		recv:    chain{key: keys.r2i},
		skipped: map[uint64][32]byte{},
	}
	return s, nil
}

func ctHash(ct []byte) [16]byte {
	sum := sha256.Sum256(ct)
	var h [16]byte
	copy(h[:], sum[:])
	return h
}

// nextLease returns the chain leaseSize counters after s.send.
func nextLease(s *session) chain {
	next := s.send
	for range leaseSize {
		next.step()
	}
	return next
}

// extendLease reserves the next leaseSize counters of s on disk.
func (b *Box) extendLease(s *session) error {
	old := s.lease
	s.lease = nextLease(s)
	if err := b.put(s); err != nil {
		s.lease = old
		return err
	}
	return nil
}

// sealOn seals plaintext on s; isNew sessions are registered once persisted.
func (b *Box) sealOn(s *session, plaintext []byte, isNew bool) ([]byte, error) {
	n := s.send.next
	if n > maxCounter {
		return nil, fmt.Errorf("session %x has used all its counters: call Rekey with the peer's card", s.id)
	}
	switch {
	case isNew:
		// register persists the session together with its first lease.
		s.lease = nextLease(s)
		if err := b.register(s); err != nil {
			return nil, err
		}
	case n >= s.lease.next:
		if err := b.extendLease(s); err != nil {
			return nil, err
		}
	}
	var out []byte
	if s.confirmed {
		out = make([]byte, 0, msgOverhead+len(plaintext))
		out = appendMsgHeader(out, s.id, n)
	} else {
		out = make([]byte, 0, initOverhead+len(plaintext))
		out = append(out, s.initHdr...)
		out = binary.BigEndian.AppendUint32(out, uint32(n))
	}
	key := s.send.messageKey()
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("message cipher: %w", err)
	}
	nonce := nonceFor(n)
	if b.trace != nil {
		b.trace(key, nonce)
	}
	s.send.step()
	return aead.Seal(out, nonce, plaintext, out), nil
}

// put persists s.
func (b *Box) put(s *session) error {
	v, err := s.marshal()
	if err != nil {
		return err
	}
	if err := b.kv.Put(sessionKey(s.id), v); err != nil {
		return fmt.Errorf("persist session %x: %w", s.id, err)
	}
	s.saved = v
	return nil
}

// register persists a new session, makes it the newest for its peer and
// drops the oldest sessions over the limits. Only the persist can fail it:
// a failed drop is retried at the next registration.
func (b *Box) register(s *session) error {
	s.gen = b.gen + 1
	if err := b.put(s); err != nil {
		return err
	}
	b.index(s)
	b.evict(s.peer)
	return nil
}

// evict drops the oldest sessions of peer, then the oldest overall, while
// they are over the limits. It stops at the first store error.
func (b *Box) evict(peer Address) {
	var mine []*session
	for _, o := range b.sessions {
		if o.peer == peer {
			mine = append(mine, o)
		}
	}
	for len(mine) > maxSessionsPerPeer {
		i := oldest(mine)
		if b.drop(mine[i]) != nil {
			return
		}
		mine = append(mine[:i], mine[i+1:]...)
	}
	for len(b.sessions) > maxSessions {
		all := make([]*session, 0, len(b.sessions))
		for _, o := range b.sessions {
			all = append(all, o)
		}
		if b.drop(all[oldest(all)]) != nil {
			return
		}
	}
}

func oldest(ss []*session) int {
	i := 0
	for j, s := range ss {
		if s.gen < ss[i].gen {
			i = j
		}
	}
	return i
}

// drop deletes a session. A responder session leaves a tombstone so that a
// replay of its init cannot recreate it while the prekey is still accepted.
func (b *Box) drop(s *session) error {
	if !s.initiator {
		var ep [4]byte
		binary.BigEndian.PutUint32(ep[:], s.epoch)
		if err := b.kv.Put(tombstoneKey(s.ctHash), ep[:]); err != nil {
			return fmt.Errorf("drop session %x: %w", s.id, err)
		}
	}
	if err := b.kv.Delete(sessionKey(s.id)); err != nil {
		return fmt.Errorf("drop session %x: %w", s.id, err)
	}
	delete(b.sessions, s.id)
	w := wireID(s.id)
	if rest := slices.DeleteFunc(b.byWire[w], func(o *session) bool { return o == s }); len(rest) > 0 {
		b.byWire[w] = rest
	} else {
		delete(b.byWire, w)
	}
	if !s.initiator {
		delete(b.byCt, s.ctHash)
	}
	if b.newest[s.peer] == s {
		delete(b.newest, s.peer)
		for _, o := range b.sessions {
			if o.peer == s.peer && (b.newest[s.peer] == nil || o.gen > b.newest[s.peer].gen) {
				b.newest[s.peer] = o
			}
		}
	}
	return nil
}

// Forget drops every session with peer; the next Seal needs its card.
func (b *Box) Forget(peer Address) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.sessions {
		if s.peer == peer {
			if err := b.drop(s); err != nil {
				return fmt.Errorf("forget %s: %w", peer, err)
			}
		}
	}
	return nil
}

// Open decrypts a sealed payload addressed to this identity and returns the
// authenticated sender.
func (b *Box) Open(sealed []byte) (Opened, error) {
	if len(sealed) == 0 {
		return Opened{}, fmt.Errorf("open: %w: empty payload", ErrMalformed)
	}
	b.mu.Lock()
	var (
		o   Opened
		err error
	)
	switch sealed[0] {
	case typeInit:
		o, err = b.openInit(sealed)
	case typeMsg:
		o, err = b.openMsg(sealed)
	default:
		err = fmt.Errorf("%w: unknown type 0x%02x (from a newer tern, or not a sealed payload)", ErrMalformed, sealed[0])
	}
	gen := b.dirtyGen
	b.mu.Unlock()
	if err != nil {
		return Opened{}, fmt.Errorf("open: %w", err)
	}
	// The plaintext leaves only once the receive state that refuses its
	// replay is on disk.
	if err := b.flushUntil(gen); err != nil {
		return Opened{}, fmt.Errorf("open: %w", err)
	}
	return o, nil
}

// flushUntil returns once every receive-state change up to gen is on disk.
// Concurrent Opens share flushes: while one flush writes, the changes of
// the Opens that arrive meanwhile gather for the next one, so a burst of
// messages costs a few disk syncs instead of one each.
//
// If a write fails, every session in the flush returns to its state on
// disk and the callers get the error: their messages did not open, and open
// when they come again (the store keeps the bundle and retries delivery).
func (b *Box) flushUntil(gen uint64) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	if gen > b.failedFrom && gen <= b.failedGen {
		return b.failErr // undone by a failed flush
	}
	if b.flushedGen >= gen {
		return nil
	}
	b.mu.Lock()
	upto := b.dirtyGen
	type snap struct {
		s *session
		v []byte
	}
	var snaps []snap
	var err error
	for id, s := range b.dirty {
		v, merr := s.marshal()
		if merr != nil {
			err = merr
		}
		snaps = append(snaps, snap{s, v})
		delete(b.dirty, id)
	}
	b.mu.Unlock()
	for _, sn := range snaps {
		if err != nil {
			break
		}
		if perr := b.kv.Put(sessionKey(sn.s.id), sn.v); perr != nil {
			err = fmt.Errorf("persist session %x: %w", sn.s.id, perr)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		// Undo in memory what is not on disk: the receive side of every
		// session of this flush, and of any changed since (built on it).
		for _, sn := range snaps {
			b.dirty[sn.s.id] = sn.s
		}
		for id, s := range b.dirty {
			s.restoreRecv()
			delete(b.dirty, id)
		}
		b.failedFrom, b.failedGen, b.failErr = b.flushedGen, b.dirtyGen, err
		return err
	}
	for _, sn := range snaps {
		sn.s.saved = sn.v
	}
	b.flushedGen = upto
	return nil
}

func (b *Box) openMsg(sealed []byte) (Opened, error) {
	m, err := parseMsg(sealed)
	if err != nil {
		return Opened{}, err
	}
	cands := b.byWire[m.sid]
	if len(cands) == 0 {
		return Opened{}, fmt.Errorf("%w %x on this node: the sender must start a new session (call Rekey with this node's card)", ErrNoSession, m.sid)
	}
	// Several sessions may share the 4-byte wire id: try each; only the
	// right one passes the tag (a failed try changes no state). Report a
	// refusal other than ErrForged (replay, store failure) if any session
	// gave one, since a colliding session always adds an ErrForged.
	var firstErr error
	for _, s := range slices.Clone(cands) {
		n := reconstructCounter(s.recv.next, m.truncated)
		pt, err := b.openOn(s, n, m.ad, m.body, false)
		if err == nil {
			return Opened{From: s.peer, Plaintext: pt}, nil
		}
		if firstErr == nil || (errors.Is(firstErr, ErrForged) && !errors.Is(err, ErrForged)) {
			firstErr = err
		}
	}
	return Opened{}, firstErr
}

func (b *Box) openInit(sealed []byte) (Opened, error) {
	in, err := parseInit(sealed)
	if err != nil {
		return Opened{}, err
	}
	h := ctHash(in.ct)
	if s := b.byCt[h]; s != nil {
		pt, err := b.openOn(s, in.counter, in.ad, in.body, false)
		if err != nil {
			return Opened{}, err
		}
		return Opened{From: s.peer, Plaintext: pt}, nil
	}
	s, err := b.acceptInit(in, h)
	if err != nil {
		return Opened{}, err
	}
	pt, err := b.openOn(s, in.counter, in.ad, in.body, true)
	if err != nil {
		return Opened{}, err
	}
	return Opened{From: s.peer, Plaintext: pt, NewSession: true}, nil
}

// acceptInit decapsulates and authenticates a new init; the session it
// returns is registered by openOn once its first message opens.
func (b *Box) acceptInit(in sealedInit, h [16]byte) (*session, error) {
	cur := PrekeyEpoch(b.now())
	if in.epoch > cur || in.epoch+2 < cur {
		return nil, fmt.Errorf("%w: session init for prekey epoch %d, this node accepts %d-%d: the sender needs this node's fresh card (or a clock is wrong)",
			ErrStalePrekey, in.epoch, max(cur, 2)-2, cur)
	}
	if v, err := b.kv.Get(tombstoneKey(h)); err != nil {
		return nil, fmt.Errorf("check init replay: %w", err)
	} else if v != nil {
		return nil, fmt.Errorf("%w: init of a session this node already dropped", ErrReplay)
	}
	priv, err := b.prekey(in.epoch, cur)
	if err != nil {
		return nil, err
	}
	shared := xwing.Decapsulate(in.ct, priv)
	keys, err := deriveSessionKeys(shared, b.id.addr)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(keys.sender[:])
	if err != nil {
		return nil, fmt.Errorf("sender block cipher: %w", err)
	}
	block, err := aead.Open(nil, nonceFor(0), in.sender, in.senderAD)
	if err != nil {
		return nil, fmt.Errorf("%w: session init does not open: it is not for this node (%s) or was altered", ErrForged, b.id.addr.Short())
	}
	edPub := ed25519.PublicKey(block[:32])
	var mlHash [32]byte
	copy(mlHash[:], block[32:64])
	if !ed25519.Verify(edPub, initSigMessage(in.epoch, in.ct, b.id.addr, keys.id), block[64:]) {
		return nil, fmt.Errorf("%w: bad sender signature on session init", ErrForged)
	}
	from := DeriveAddress(edPub, mlHash)
	if from == b.id.addr {
		return nil, fmt.Errorf("%w: session init claims to come from this node", ErrForged)
	}
	if b.sessions[keys.id] != nil {
		return nil, fmt.Errorf("%w: session id %x already in use", ErrForged, keys.id)
	}
	return &session{
		id: keys.id, peer: from, root: keys.root, created: b.now().Unix(),
		confirmed: true, ctHash: h, epoch: in.epoch,
		send:    chain{key: keys.r2i},
		lease:   chain{key: keys.r2i},
		recv:    chain{key: keys.i2r},
		skipped: map[uint64][32]byte{},
	}, nil
}

// prekey returns this node's X-Wing private key of epoch, cached.
func (b *Box) prekey(epoch, cur uint32) ([]byte, error) {
	if k := b.prekeys[epoch]; k != nil {
		return k, nil
	}
	priv, _, err := b.id.prekey(epoch)
	if err != nil {
		return nil, err
	}
	for e := range b.prekeys {
		if e+2 < cur || e > cur {
			delete(b.prekeys, e)
		}
	}
	b.prekeys[epoch] = priv
	return priv, nil
}

// openOn opens message n of s. The new receive state is persisted before the
// plaintext is returned, so a replay is refused even after a crash. A new
// session is registered only when its first message opens.
//
// Before the tag is checked, reaching n costs one HMAC per counter skipped
// (at most MaxCounterJump); the message keys of skipped counters are derived
// only once the tag has passed, so a forged message costs no more.
func (b *Box) openOn(s *session, n uint64, ad, body []byte, isNew bool) ([]byte, error) {
	var (
		key     [32]byte
		recv    = s.recv
		skipped = s.skipped
		pending []chain // skipped counters kept in the window, keys derived after the tag check
	)
	switch {
	case n < s.recv.next:
		k, ok := s.skipped[n]
		if !ok {
			if s.recv.next-n <= recvWindow {
				return nil, fmt.Errorf("%w: message %d of session %x was already opened", ErrReplay, n, s.id)
			}
			return nil, fmt.Errorf("%w (%w): message %d of session %x is more than %d behind the newest (%d) and its key is gone: ask the sender to resend the content",
				ErrReplay, ErrTooOld, n, s.id, recvWindow, s.recv.next-1)
		}
		key = k
	case n-s.recv.next > MaxCounterJump:
		// Refused before deriving anything: either forged, or so many
		// messages were lost that the sender must start over.
		return nil, fmt.Errorf("%w (%w): message %d of session %x is more than %d ahead of the next expected (%d): forged, or it overtook that many (it opens once they arrive), or that many were lost and the sender must Rekey",
			ErrForged, ErrTooFarAhead, n, s.id, MaxCounterJump, s.recv.next)
	default:
		for recv.next < n {
			if n-recv.next < recvWindow {
				pending = append(pending, recv)
			}
			recv.step()
		}
		key = recv.messageKey()
		recv.step()
		b.openHMACs += n - s.recv.next + 2
	}
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		return nil, fmt.Errorf("message cipher: %w", err)
	}
	pt, err := aead.Open(nil, nonceFor(n), body, ad)
	if err != nil {
		return nil, fmt.Errorf("%w: message %d of session %x fails authentication", ErrForged, n, s.id)
	}
	switch {
	case n < s.recv.next:
		skipped = maps.Clone(s.skipped)
		delete(skipped, n)
	case len(pending) > 0 || len(s.skipped) > 0:
		skipped = make(map[uint64][32]byte, len(s.skipped)+len(pending))
		for c, k := range s.skipped {
			if c+recvWindow >= recv.next {
				skipped[c] = k
			}
		}
		for _, p := range pending {
			skipped[p.next] = p.messageKey()
		}
		b.openHMACs += uint64(len(pending))
	}
	old := *s
	s.recv, s.skipped = recv, skipped
	if s.initiator && !s.confirmed {
		s.confirmed, s.initHdr = true, nil
	}
	if isNew {
		if err = b.register(s); err != nil {
			*s = old
			return nil, err
		}
		return pt, nil
	}
	// Persisted by Open through flushUntil, after the lock is released.
	b.dirty[s.id] = s
	b.dirtyGen++
	return pt, nil
}
