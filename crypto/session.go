package crypto

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
)

// MaxCounterJump is how far ahead of the receiver's next expected counter a
// message may be. Reaching counter n costs one HMAC per skipped counter, paid
// before the tag can be checked, so this bounds the work a forged message
// causes: at most MaxCounterJump+2 HMACs, about 1 ms on one amd64 core
// (BenchmarkOpenForged; the former limit of 32767 cost about 25 ms). The
// price: a message that overtakes more than MaxCounterJump others of its
// session is refused (ErrTooFarAhead) until the window has moved up to it,
// and if more than MaxCounterJump consecutive messages are lost for good,
// the session is stuck until the sender calls Rekey.
const MaxCounterJump = 2048

// Session parameters.
const (
	// recvWindow is how many message keys below the newest opened counter a
	// session keeps for messages that arrive late. Older messages are refused.
	recvWindow = 512
	// leaseSize is how many sending counters are reserved on disk at a time.
	// After a crash the sender continues from the end of the lease, so no
	// counter (and no key and nonce) is ever used twice.
	leaseSize = 64
	// maxCounter is the last counter of a session; the init form carries it
	// in 4 bytes.
	maxCounter = 1<<32 - 1
	// maxSessionsPerPeer and maxSessions bound the stored sessions; the oldest
	// are dropped first.
	maxSessionsPerPeer = 4
	maxSessions        = 4096

	// recordVersion 2: 16-byte session ids (version 1 had 8).
	recordVersion = 2
)

// Key-derivation labels of the session keys (see FORMAT.md).
const (
	labelSessionSalt = "tern/v1/session"
	labelSenderKey   = "tern/v1/sender-block"
	labelSessionID   = "tern/v1/session-id"
	labelRoot        = "tern/v1/root"
	labelChainI2R    = "tern/v1/chain/i2r"
	labelChainR2I    = "tern/v1/chain/r2i"
	labelMsgKey      = "tern/v1/msg"
	labelChainNext   = "tern/v1/chain-next"
	initSigDomain    = "tern/v1/init-sig\x00"
)

// expand32 is HKDF-Expand(SHA-256, prk, info parts concatenated, 32): for a
// 32-byte output that is one HMAC of info || 0x01.
func expand32(prk []byte, info ...[]byte) [32]byte {
	m := hmac.New(sha256.New, prk)
	for _, p := range info {
		m.Write(p)
	}
	m.Write([]byte{1})
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// sessionKeys are derived from an X-Wing shared secret.
type sessionKeys struct {
	sender   [32]byte // seals the sender block of the init
	id       [sessionIDSize]byte
	root     [32]byte // kept for future rekeys
	i2r, r2i [32]byte // first chain keys of each direction
}

func deriveSessionKeys(shared []byte, recipient Address) (sessionKeys, error) {
	prk, err := hkdf.Extract(sha256.New, shared, []byte(labelSessionSalt))
	if err != nil {
		return sessionKeys{}, fmt.Errorf("derive session keys: %w", err)
	}
	var k sessionKeys
	k.sender = expand32(prk, []byte(labelSenderKey), recipient[:])
	sid := expand32(prk, []byte(labelSessionID), recipient[:])
	copy(k.id[:], sid[:sessionIDSize])
	k.root = expand32(prk, []byte(labelRoot), recipient[:])
	k.i2r = expand32(prk, []byte(labelChainI2R), recipient[:])
	k.r2i = expand32(prk, []byte(labelChainR2I), recipient[:])
	return k, nil
}

// initSigMessage is what the initiator signs with Ed25519.
func initSigMessage(epoch uint32, ct []byte, recipient Address, sid [sessionIDSize]byte) []byte {
	m := make([]byte, 0, len(initSigDomain)+4+len(ct)+AddressSize+sessionIDSize)
	m = append(m, initSigDomain...)
	m = binary.BigEndian.AppendUint32(m, epoch)
	m = append(m, ct...)
	m = append(m, recipient[:]...)
	return append(m, sid[:]...)
}

// chain is one direction's symmetric ratchet: key is the chain key of
// counter next. Message key n = HKDF-Expand(ck_n, "tern/v1/msg" || n) and
// ck_{n+1} = HKDF-Expand(ck_n, "tern/v1/chain-next"); a used chain key is
// overwritten, which gives forward secrecy.
type chain struct {
	key  [32]byte
	next uint64
}

func (c *chain) messageKey() [32]byte {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], c.next)
	return expand32(c.key[:], []byte(labelMsgKey), n[:])
}

func (c *chain) step() {
	c.key = expand32(c.key[:], []byte(labelChainNext))
	c.next++
}

// session is the state of one pairwise session. It is guarded by Box.mu.
type session struct {
	id        [sessionIDSize]byte
	peer      Address
	initiator bool
	gen       uint64 // creation order in this Box; the newest per peer sends
	root      [32]byte
	created   int64
	confirmed bool   // the sender has received something on this session
	initHdr   []byte // initiator, until confirmed: init bytes 0..1268
	ctHash    [16]byte
	epoch     uint32
	send      chain // in memory only: next counter to use
	lease     chain // on disk: counters below lease.next may have been used
	recv      chain
	skipped   map[uint64][32]byte // unopened counters in [recv.next-recvWindow, recv.next)
	saved     []byte              // the record last written to disk (to undo a failed flush)
}

// sessionRecord is a session as stored in the KV (key 's' || session id, 16
// bytes).
type sessionRecord struct {
	_          struct{} `cbor:",toarray"`
	Version    uint
	ID         []byte
	Peer       []byte
	Initiator  bool
	Gen        uint64
	Root       []byte
	Created    int64
	Confirmed  bool
	InitHeader []byte
	CtHash     []byte
	Epoch      uint32
	LeaseKey   []byte
	LeaseNext  uint64
	RecvKey    []byte
	RecvNext   uint64
	Skipped    []skippedRecord
}

type skippedRecord struct {
	_       struct{} `cbor:",toarray"`
	Counter uint64
	Key     []byte
}

func sessionKey(sid [sessionIDSize]byte) []byte { return append([]byte{'s'}, sid[:]...) }
func tombstoneKey(h [16]byte) []byte            { return append([]byte{'t'}, h[:]...) }

func (s *session) marshal() ([]byte, error) {
	r := sessionRecord{
		Version: recordVersion, ID: s.id[:], Peer: s.peer[:], Initiator: s.initiator,
		Gen: s.gen, Root: s.root[:], Created: s.created, Confirmed: s.confirmed,
		InitHeader: s.initHdr, CtHash: s.ctHash[:], Epoch: s.epoch,
		LeaseKey: s.lease.key[:], LeaseNext: s.lease.next,
		RecvKey: s.recv.key[:], RecvNext: s.recv.next,
	}
	for n, k := range s.skipped {
		r.Skipped = append(r.Skipped, skippedRecord{Counter: n, Key: append([]byte(nil), k[:]...)})
	}
	sort.Slice(r.Skipped, func(i, j int) bool { return r.Skipped[i].Counter < r.Skipped[j].Counter })
	b, err := modes.enc.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode session %x: %w", s.id, err)
	}
	return b, nil
}

func unmarshalSession(b []byte) (*session, error) {
	var r sessionRecord
	if err := modes.state.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode session record: %w", err)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("session record version %d, this node reads %d", r.Version, recordVersion)
	}
	if len(r.ID) != sessionIDSize || len(r.Peer) != AddressSize || len(r.Root) != 32 ||
		len(r.CtHash) != 16 || len(r.LeaseKey) != 32 || len(r.RecvKey) != 32 ||
		(len(r.InitHeader) != 0 && len(r.InitHeader) != offInitCtr) || len(r.Skipped) > recvWindow {
		return nil, fmt.Errorf("session record has a field of the wrong size")
	}
	s := &session{
		initiator: r.Initiator, gen: r.Gen, created: r.Created, confirmed: r.Confirmed,
		initHdr: r.InitHeader, epoch: r.Epoch,
		lease: chain{next: r.LeaseNext}, recv: chain{next: r.RecvNext},
		skipped: make(map[uint64][32]byte, len(r.Skipped)),
	}
	if len(s.initHdr) == 0 {
		s.initHdr = nil
	}
	copy(s.id[:], r.ID)
	copy(s.peer[:], r.Peer)
	copy(s.root[:], r.Root)
	copy(s.ctHash[:], r.CtHash)
	copy(s.lease.key[:], r.LeaseKey)
	copy(s.recv.key[:], r.RecvKey)
	for _, sk := range r.Skipped {
		if len(sk.Key) != 32 || sk.Counter >= s.recv.next {
			return nil, fmt.Errorf("session record has a bad skipped key")
		}
		var k [32]byte
		copy(k[:], sk.Key)
		s.skipped[sk.Counter] = k
	}
	// Restart: continue sending after everything that may have been used.
	s.send = s.lease
	return s, nil
}

// restoreRecv puts the receive side of s back to its last state on disk,
// after a failed write: messages opened since then open again.
func (s *session) restoreRecv() {
	if s.saved == nil {
		return
	}
	r, err := unmarshalSession(s.saved)
	if err != nil {
		return
	}
	s.recv, s.skipped, s.confirmed, s.initHdr = r.recv, r.skipped, r.confirmed, r.initHdr
}
