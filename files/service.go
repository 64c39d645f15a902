// Package files is the file transfer application: it sends a file to a
// contact (or to each member of a group: Send takes a list of addresses,
// and a group file's offers name the group, see group.go) in chunks
// carried by message.File messages over the node's sealed sessions, and
// receives, checks and keeps files sent to this node.
//
// A transfer goes like this (wire format in FORMAT.md):
//
//  1. The sender copies the file into DATA/files/.outbox (so a transfer
//     survives the original being moved) and sends an Offer: name, size,
//     SHA-256, chunk size and count, media type.
//  2. The receiver records the offer and answers with an Ack listing the
//     chunks it already holds (none, or some after a restart).
//  3. The sender keeps at most Window chunks in flight: sent and not yet
//     acknowledged by the receiver. Chunks travel as bulk bundles
//     (bundle.FlagBulk), which the router keeps off radio links unless the
//     user asked for radio.
//  4. The receiver writes each chunk into DATA/files/.partial and fsyncs it
//     and the transfer's record before its handler returns (so the bundle
//     is released only once the chunk is safe), and acknowledges batches.
//  5. With every chunk held it checks the SHA-256, moves the file into
//     DATA/files under its (sanitised, made unique) name and sends a final
//     Ack; a mismatch is refused and reported to the sender.
//
// Both sides keep their transfer state in the store, so a restart or a
// link cut resumes where it stopped (a restarted sender offers again, and
// the receiver's answer lists what it holds). The sender resends only
// chunks that the receiver has not acknowledged and that no longer sit in
// its own store (custody carries those), after RetryAfter (doubling per
// attempt, at most an hour), and, while the receiver has said nothing since
// they went, only after 16 RetryAfter: a relay holding chunks for a
// receiver that is offline gets no pile of copies.
package files

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/store"
)

// Defaults for Config fields left zero.
const (
	DefaultChunkSize  = 48 << 10
	DefaultWindow     = 32
	DefaultRetryAfter = 2 * time.Minute
	DefaultMaxSize    = 4 << 30
	// eventEvery spaces progress events of one transfer; state changes
	// are published at once.
	eventEvery = 100 * time.Millisecond
)

// Transfer states as users see them.
const (
	StateQueued    = "queued"    // offered, waiting for the receiver's answer
	StateSending   = "sending"   // the receiver accepted; chunks are going
	StateReceiving = "receiving" // incoming, chunks arriving
	StateDone      = "done"      // delivered and checked (both sides)
	StateFailed    = "failed"    // refused, or the file did not check out
	StateCancelled = "cancelled" // given up by one side
)

// Messenger seals and sends application messages; *chat.App is one.
type Messenger interface {
	SendMessage(to crypto.Address, m *message.Message, opt chat.SendOptions) (*bundle.Bundle, error)
}

// Paths explains why bulk data to a destination waits; *router.Router is
// one. BulkProblem returns "" when nothing holds it back.
type Paths interface {
	BulkProblem(dest bundle.Addr, size int64) string
}

// Config wires the file application.
type Config struct {
	Dir       string       // where received files go (DATA/files); required
	Store     *store.Store // transfer state; required
	Messenger Messenger    // required
	Paths     Paths        // optional: notes on why a transfer waits
	Groups    Groups       // optional: judges group labels on offers (none: every file is 1:1)
	// Name returns the contact name of an address, "" if none.
	Name   func(crypto.Address) string
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger

	ChunkSize  int           // bytes per chunk, default 48 KiB, at most MaxChunk
	Window     int           // chunks in flight per transfer, default 32
	RetryAfter time.Duration // resend an unacknowledged chunk that left this node after this long; default 2 min
	MaxSize    int64         // largest file sent or accepted, default 4 GiB
}

// Transfer is one transfer as the API shows it.
type Transfer struct {
	ID        string `json:"id"` // local handle (hex)
	Peer      string `json:"peer"`
	PeerName  string `json:"peer_name,omitempty"`
	Incoming  bool   `json:"incoming"`
	Name      string `json:"name"`
	Mime      string `json:"mime,omitempty"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	ChunkSize int    `json:"chunk_size"`
	Chunks    int    `json:"chunks"`
	// Bytes is the progress: acknowledged by the receiver (outgoing) or
	// held on disk here (incoming).
	Bytes     int64  `json:"bytes"`
	State     string `json:"state"`
	Error     string `json:"error,omitempty"`
	Note      string `json:"note,omitempty"` // why it waits, if something holds it back
	OverRadio bool   `json:"over_radio,omitempty"`
	Resent    int    `json:"resent"` // chunks sent again (outgoing)
	Created   int64  `json:"created"`
	Updated   int64  `json:"updated"`
	Path      string `json:"path,omitempty"` // incoming and done: the file
	// Group is the group the file belongs to (hex ID): sent to it
	// (outgoing), or offered for it by a current member (incoming).
	Group     string `json:"group,omitempty"`
	GroupName string `json:"group_name,omitempty"`
	// Batch is shared by the transfers of one file sent to a group, one
	// per member.
	Batch string `json:"batch,omitempty"`
}

// Event is published when a transfer changes.
type Event struct {
	Type string   `json:"type"` // "file"
	File Transfer `json:"file"`
}

// SendOptions are the choices a user makes for one file.
type SendOptions struct {
	Mime string
	// OverRadio lets the chunks cross radio links (they are held off radio
	// otherwise); the user was shown the airtime it takes.
	OverRadio bool
	// Group, if not zero, sends the file to a group: the recipients are
	// its members, each offer names the group and GroupEpoch (the
	// membership epoch the sender holds, at least 1), and the transfers
	// share a Batch. GroupName is shown with them.
	Group      [16]byte
	GroupEpoch uint64
	GroupName  string
}

// flight is a message sent and not yet acknowledged.
type flight struct {
	Bundle   bundle.ID `json:"bundle"`
	Sent     int64     `json:"sent"` // unix ms of the last send
	Attempts int       `json:"attempts"`
}

// record is a transfer's durable state (bucket "files", key = local ID).
type record struct {
	Wire      [16]byte         `json:"wire"` // the ID on the wire
	Incoming  bool             `json:"incoming"`
	Peer      crypto.Address   `json:"peer"`
	Name      string           `json:"name"`
	Mime      string           `json:"mime"`
	Size      uint64           `json:"size"`
	SHA256    [32]byte         `json:"sha256"`
	ChunkSize uint32           `json:"chunk_size"`
	Chunks    uint32           `json:"chunks"`
	State     string           `json:"state"`
	Error     string           `json:"error,omitempty"`
	OverRadio bool             `json:"over_radio,omitempty"`
	Created   int64            `json:"created"`
	Updated   int64            `json:"updated"`
	Have      Set              `json:"have,omitempty"` // incoming: held; outgoing: acknowledged
	Accepted  bool             `json:"accepted,omitempty"`
	Offer     *flight          `json:"offer,omitempty"`
	Flights   map[int64]flight `json:"flights,omitempty"` // outgoing chunks in flight by index
	Resent    int              `json:"resent,omitempty"`
	LastAck   int64            `json:"last_ack,omitempty"` // outgoing: when the receiver last reported progress
	Content   string           `json:"content,omitempty"`  // outgoing: the outbox file
	Path      string           `json:"path,omitempty"`     // incoming: the final file
	Refusal   string           `json:"refusal,omitempty"`  // incoming: what the sender is told when refused
	groupRecord
}

func (r *record) final() bool {
	return r.State == StateDone || r.State == StateFailed || r.State == StateCancelled
}

// transfer is a record and what works on it.
type transfer struct {
	key [16]byte

	mu   sync.Mutex
	rec  record
	wake chan struct{} // the sender pump or the ack loop
	file *os.File      // outgoing: the outbox file; incoming: the partial file

	// incoming: group commit of chunks (receive.go)
	queue     []*commit
	leading   bool
	finishing bool

	lastEvent time.Time
	eventDue  bool      // a trailing event is scheduled
	dirty     bool      // outgoing: acknowledged progress not yet saved
	acked     uint64    // incoming: chunks held when the last ack went
	ackedAt   time.Time // and when (wall clock: it only paces acks)
}

// Service is the file application of one node. Its methods are safe for
// concurrent use.
type Service struct {
	cfg Config
	kv  *store.KV
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Lock order: mu before a transfer's mu; the feed's is taken last.
	mu        sync.Mutex
	transfers map[[16]byte]*transfer
	closed    bool
	regroup   chan struct{} // GroupsChanged: judge pending group labels again

	feed *chat.Feed[Event]
}

// New opens the file application: it loads the transfers in the store and
// resumes those that were under way.
func New(cfg Config) (*Service, error) {
	if cfg.Dir == "" || cfg.Store == nil || cfg.Messenger == nil {
		return nil, errors.New("files: Dir, Store and Messenger are required")
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
	if cfg.Name == nil {
		cfg.Name = func(crypto.Address) string { return "" }
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.ChunkSize > MaxChunk {
		return nil, fmt.Errorf("files: ChunkSize %d is over the %d-byte maximum", cfg.ChunkSize, MaxChunk)
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	for _, d := range []string{cfg.Dir, outboxDir(cfg.Dir), partialDir(cfg.Dir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("files: creating %s: %w (check that the data directory is writable)", d, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, kv: cfg.Store.Bucket("files"), log: cfg.Logger.With("component", "files"),
		ctx: ctx, cancel: cancel, transfers: map[[16]byte]*transfer{}, feed: chat.NewFeed[Event](256),
		regroup: make(chan struct{}, 1)}
	var resume []*transfer
	err := s.kv.ForEach(func(k, v []byte) error {
		var rec record
		if len(k) != 16 || json.Unmarshal(v, &rec) != nil {
			s.log.Warn("skipping an unreadable transfer record", "key", hex.EncodeToString(k))
			return nil
		}
		t := &transfer{key: [16]byte(k), rec: rec, wake: make(chan struct{}, 1)}
		s.transfers[t.key] = t
		if !rec.final() {
			resume = append(resume, t)
		}
		return nil
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("files: loading transfers: %w", err)
	}
	for _, t := range resume {
		s.start(t)
	}
	s.wg.Add(2)
	go s.resumeAll(resume)
	go s.regroupLoop()
	poke(s.regroup) // labels left pending before a restart
	return s, nil
}

func outboxDir(dir string) string  { return filepath.Join(dir, ".outbox") }
func partialDir(dir string) string { return filepath.Join(dir, ".partial") }

// start runs the goroutine that moves t forward: the pump of an outgoing
// transfer, the ack loop and (if all chunks are in) the check of an
// incoming one.
func (s *Service) start(t *transfer) {
	s.wg.Add(1)
	if t.rec.Incoming {
		go s.ackLoop(t)
	} else {
		go s.pump(t)
	}
	poke(t.wake)
}

// resumeAll runs resume for the outgoing transfers loaded at start.
func (s *Service) resumeAll(ts []*transfer) {
	defer s.wg.Done()
	for _, t := range ts {
		if s.ctx.Err() == nil && !t.rec.Incoming {
			s.resume(t)
		}
	}
}

// Close stops the pumps and closes open files. Transfers resume at the
// next New.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.transfers {
		t.mu.Lock()
		if t.file != nil {
			t.file.Close()
			t.file = nil
		}
		t.mu.Unlock()
	}
	return nil
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// save writes t's record durably; call with t.mu held.
func (s *Service) save(t *transfer) error {
	t.rec.Updated = s.cfg.Now().UnixMilli()
	v, err := json.Marshal(&t.rec)
	if err != nil {
		return err
	}
	return s.kv.Put(t.key[:], v)
}

// view is the API form of t; call with t.mu held.
func (s *Service) view(t *transfer) Transfer {
	r := &t.rec
	v := Transfer{
		ID: hex.EncodeToString(t.key[:]), Peer: r.Peer.String(), PeerName: s.cfg.Name(r.Peer), Incoming: r.Incoming,
		Name: r.Name, Mime: r.Mime, Size: int64(r.Size), SHA256: hex.EncodeToString(r.SHA256[:]),
		ChunkSize: int(r.ChunkSize), Chunks: int(r.Chunks), Bytes: int64(r.Have.Bytes(r.Size, r.ChunkSize)),
		State: r.State, Error: r.Error, OverRadio: r.OverRadio, Resent: r.Resent,
		Created: r.Created, Updated: r.Updated, Path: r.Path,
	}
	if r.State == StateDone {
		v.Bytes = v.Size
	}
	r.groupView(&v)
	if !r.Incoming && !r.final() && !r.OverRadio && s.cfg.Paths != nil {
		v.Note = s.cfg.Paths.BulkProblem(bundle.Addr(r.Peer), int64(r.Size)-v.Bytes)
	}
	return v
}

// changed publishes t's new state; progress events of one transfer are
// spaced by eventEvery (the last one always goes out). Call with t.mu held.
func (s *Service) changed(t *transfer, stateChanged bool) {
	now := s.cfg.Now()
	if !stateChanged && now.Sub(t.lastEvent) < eventEvery {
		if !t.eventDue {
			t.eventDue = true
			time.AfterFunc(eventEvery, func() {
				t.mu.Lock()
				defer t.mu.Unlock()
				if t.eventDue {
					t.eventDue = false
					t.lastEvent = s.cfg.Now()
					s.publish(Event{Type: "file", File: s.view(t)})
				}
			})
		}
		return
	}
	t.eventDue = false
	t.lastEvent = now
	s.publish(Event{Type: "file", File: s.view(t)})
}

func (s *Service) publish(e Event) { s.feed.Publish(e) }

// Subscribe returns a channel of events until ctx ends. A subscriber that
// falls behind by more than 256 events misses the excess (List stays
// authoritative).
func (s *Service) Subscribe(ctx context.Context) <-chan Event { return s.feed.Subscribe(ctx) }

// List returns every transfer, oldest first.
func (s *Service) List() []Transfer {
	s.mu.Lock()
	ts := make([]*transfer, 0, len(s.transfers))
	for _, t := range s.transfers {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	out := make([]Transfer, 0, len(ts))
	for _, t := range ts {
		t.mu.Lock()
		out = append(out, s.view(t))
		t.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created < out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// ErrNotFound: no transfer has that ID.
var ErrNotFound = errors.New("files: no such transfer")

func (s *Service) lookup(id string) (*transfer, error) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("%w: %q is not a transfer ID (32 hex characters; see `tern files`)", ErrNotFound, id)
	}
	s.mu.Lock()
	t := s.transfers[[16]byte(b)]
	s.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("%w: %s (see `tern files`)", ErrNotFound, id)
	}
	return t, nil
}

// Get returns one transfer by its ID.
func (s *Service) Get(id string) (Transfer, error) {
	t, err := s.lookup(id)
	if err != nil {
		return Transfer{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return s.view(t), nil
}

// Open opens a received file for reading.
func (s *Service) Open(id string) (*os.File, Transfer, error) {
	t, err := s.lookup(id)
	if err != nil {
		return nil, Transfer{}, err
	}
	t.mu.Lock()
	v := s.view(t)
	t.mu.Unlock()
	if !v.Incoming || v.State != StateDone {
		what := "it is being received"
		switch {
		case !v.Incoming:
			what = "it is a file this node sends"
		case v.State != StateReceiving:
			what = "it " + v.State
		}
		return nil, v, fmt.Errorf("transfer %s has no file to download: %s", id, what)
	}
	f, err := os.Open(v.Path)
	if err != nil {
		return nil, v, fmt.Errorf("received file %s is gone: %w", v.Path, err)
	}
	return f, v, nil
}

// Cancel gives up a transfer under way (telling the other side), or
// forgets a finished one (a received file stays where it is).
func (s *Service) Cancel(id string) (Transfer, error) {
	t, err := s.lookup(id)
	if err != nil {
		return Transfer{}, err
	}
	t.mu.Lock()
	if t.rec.final() {
		v := s.view(t)
		t.mu.Unlock()
		if err := s.kv.Delete(t.key[:]); err != nil {
			return v, err
		}
		s.mu.Lock()
		delete(s.transfers, t.key)
		s.mu.Unlock()
		return v, nil
	}
	if t.rec.Incoming {
		s.endIncoming(t, StateCancelled, "cancelled here", "the receiver cancelled the transfer")
	} else {
		s.cancelOutgoing(t, "the sender cancelled the transfer")
	}
	v := s.view(t)
	t.mu.Unlock()
	return v, nil
}

// hashFile returns the SHA-256 of the file at path.
func hashFile(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
