// Package store is the node's durable memory: the bundles it holds for
// store-and-forward, the dedupe ("seen") set, and small named key-value
// buckets for sessions, contacts, links and settings, all in one bbolt file.
//
// Its promise: when a write method returns nil, the write is on disk
// (fsynced), so a bundle acknowledged to a sender or upstream hop survives a
// kill -9 or a power cut. Concurrent writers are group-committed (one
// committer goroutine puts every write waiting at the same moment into one
// bbolt transaction; see commit.go), so thousands of small writes per second
// cost few fsyncs. Nothing
// is dropped silently: a bundle leaves the store only through Delete or
// Expire, and Put reports per record why it refused one (ErrDuplicate,
// ErrQuota with the quota, its use and the fix).
//
// Layout of the file (one top-level bbolt bucket each):
//
//	bundles          ID -> record with its copy budget (see record.go for the encoding)
//	by_hop           NextHop(16) | seq(8) -> ID   oldest-first queue per next hop; zero hop = unrouted
//	by_dest          Dest(16) | seq(8) -> ID      records per destination
//	seen             ID -> Expires(8)             dedupe set; outlives Delete until Expires
//	expiry           Expires(8) | ID -> ""        what Expire visits, earliest first
//	usage_neighbour  From(16) -> bytes(8) | bundles(8)
//	usage_dest       Dest(16) -> bytes(8) | bundles(8)
//	meta             "total" -> bytes(8) | bundles(8); "usage" -> version marker
//	kv.<name>        the buckets handed out by Store.Bucket
//
// Every index and counter is updated in the same transaction as the record,
// so they cannot drift; if the usage counters are missing (an older file, or
// a file repaired by hand) Open recomputes them from the records.
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ternmesh/tern/bundle"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxBytes             int64 = 1 << 30
	DefaultMaxBytesPerNeighbour int64 = 256 << 20
	DefaultMaxBytesPerDest      int64 = 256 << 20
	// DefaultLockTimeout bounds how long Open waits for another process to
	// release the file.
	DefaultLockTimeout = time.Second
)

// Options tune a Store. The zero value is usable.
type Options struct {
	MaxBytes             int64            // total bytes of stored bundles; default 1 GiB
	MaxBytesPerNeighbour int64            // bytes held that came from one neighbour; default 256 MiB
	MaxBytesPerDest      int64            // bytes held for one destination; default 256 MiB
	Now                  func() time.Time // default time.Now
	Logger               *slog.Logger     // default: discard

	// LockTimeout is how long Open waits for the file lock; default DefaultLockTimeout.
	LockTimeout time.Duration

	useBoltBatch bool // benchmark comparison only: timer-based bbolt DB.Batch
}

// Sentinel errors; test with errors.Is.
var (
	// ErrDuplicate: the bundle ID is stored, or was seen and has not expired yet.
	ErrDuplicate = errors.New("store: duplicate bundle")
	// ErrQuota: storing the bundle would exceed a quota. The wrapping
	// *QuotaError says which one, its current use and the fix.
	ErrQuota = errors.New("store: quota exceeded")
	// ErrNotFound: no bundle with that ID is stored.
	ErrNotFound = errors.New("store: bundle not found")
)

// QuotaError is the error Put returns for a record refused by a quota. It
// wraps ErrQuota.
type QuotaError struct {
	Quota string      // "total", "neighbour" or "destination"
	Addr  bundle.Addr // the neighbour or destination; zero for "total"
	Used  int64       // bytes held now under this quota
	Size  int64       // bytes of the refused bundle
	Limit int64       // the quota in bytes
}

func (e *QuotaError) Error() string {
	switch e.Quota {
	case "neighbour":
		return fmt.Sprintf("store: quota exceeded: bundles from neighbour %x already use %d of %d bytes (MaxBytesPerNeighbour), this one needs %d more: raise MaxBytesPerNeighbour or let the queue drain", e.Addr[:], e.Used, e.Limit, e.Size)
	case "destination":
		return fmt.Sprintf("store: quota exceeded: bundles for destination %x already use %d of %d bytes (MaxBytesPerDest), this one needs %d more: raise MaxBytesPerDest or wait until the destination is reachable", e.Addr[:], e.Used, e.Limit, e.Size)
	default:
		return fmt.Sprintf("store: quota exceeded: the store already holds %d of %d bytes (MaxBytes), this bundle needs %d more: raise MaxBytes or free space by forwarding or expiring bundles", e.Used, e.Limit, e.Size)
	}
}

// Unwrap makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Unwrap() error { return ErrQuota }

// Record is one stored bundle with its routing state.
type Record struct {
	ID       bundle.ID
	Dest     bundle.Addr
	From     bundle.Addr // neighbour that handed it over; zero = a local application
	NextHop  bundle.Addr // zero = no route yet (held until one appears)
	Raw      []byte      // the encoded bundle
	Received int64       // local unix ms when stored; Put fills it in when zero
	Expires  int64       // local unix ms after which it is dropped; must be > 0
	// Copies is the delay-tolerant copy budget this node holds for the
	// bundle (spray-and-wait): 0 is plain custody (one copy, passed on hop
	// by hop); n > 0 means this node may hand out up to n-1 further copies
	// and keep one.
	Copies uint16
	// Readmit (Put only, not stored) accepts an ID that is in the seen set
	// but no longer stored: a bundle that came back round a routing loop,
	// whose only copy this is. A stored ID is still refused as duplicate.
	Readmit bool
}

// Stats is a snapshot of what the store holds.
type Stats struct {
	Bundles     int
	Bytes       int64                 // sum of len(Raw)
	ByNeighbour map[bundle.Addr]int64 // bytes by Record.From; the zero key is local applications
	ByDest      map[bundle.Addr]int64 // bytes by Record.Dest
}

var (
	bktBundles  = []byte("bundles")
	bktByHop    = []byte("by_hop")
	bktByDest   = []byte("by_dest")
	bktSeen     = []byte("seen")
	bktExpiry   = []byte("expiry")
	bktUseNbr   = []byte("usage_neighbour")
	bktUseDest  = []byte("usage_dest")
	bktMeta     = []byte("meta")
	keyTotal    = []byte("total")
	keyUsageVer = []byte("usage")
	kvPrefix    = "kv."
)

// usageVersion is stored under meta/usage once the usage counters are known
// to be complete.
const usageVersion = 1

// Store is an open store. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
	log  *slog.Logger

	calls   chan *call    // writers handing their function to the committer
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the committer has returned
	once    sync.Once
	commits atomic.Uint64 // group commits done, for benchmarks
}

// Open opens or creates the store file at path (its directory must exist).
// If another process holds the file, Open fails within Options.LockTimeout
// (about 1 s) with an error that says so.
func Open(path string, opts Options) (*Store, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxBytesPerNeighbour <= 0 {
		opts.MaxBytesPerNeighbour = DefaultMaxBytesPerNeighbour
	}
	if opts.MaxBytesPerDest <= 0 {
		opts.MaxBytesPerDest = DefaultMaxBytesPerDest
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        opts.LockTimeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store %s is in use by another tern process: stop it or use --data DIR: %w", path, err)
		}
		return nil, fmt.Errorf("store: opening %s: %w (check that the directory exists and is writable, and that the file is a tern store)", path, err)
	}
	db.MaxBatchDelay = time.Millisecond // only used with useBoltBatch
	s := &Store{db: db, path: path, opts: opts, log: opts.Logger.With("store", path),
		calls: make(chan *call), quit: make(chan struct{}), stopped: make(chan struct{})}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, err
	}
	go s.committer()
	return s, nil
}

// init creates the buckets and recomputes the usage counters if missing.
func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bktBundles, bktByHop, bktByDest, bktSeen, bktExpiry, bktUseNbr, bktUseDest, bktMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("store: creating bucket %s in %s: %w", name, s.path, err)
			}
		}
		meta := tx.Bucket(bktMeta)
		if u64(meta.Get(keyUsageVer)) == usageVersion {
			return nil
		}
		n, err := recomputeUsage(tx)
		if err != nil {
			return fmt.Errorf("store: recomputing usage counters of %s: %w", s.path, err)
		}
		s.log.Info("store usage counters recomputed", "bundles", n.bundles, "bytes", n.bytes)
		return nil
	})
}

// recomputeUsage rebuilds the usage counters from the records.
func recomputeUsage(tx *bolt.Tx) (usage, error) {
	for _, name := range [][]byte{bktUseNbr, bktUseDest} {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return usage{}, err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return usage{}, err
		}
	}
	nbr := map[bundle.Addr]usage{}
	dst := map[bundle.Addr]usage{}
	var total usage
	err := tx.Bucket(bktBundles).ForEach(func(k, v []byte) error {
		if headerLen(v) == 0 {
			return nil // counted as nothing; Get reports the damage
		}
		var from, dest bundle.Addr
		copy(from[:], v[offFrom:])
		copy(dest[:], v[offDest:])
		n := rawLen(v)
		total.bytes += n
		total.bundles++
		u := nbr[from]
		nbr[from] = usage{u.bytes + n, u.bundles + 1}
		u = dst[dest]
		dst[dest] = usage{u.bytes + n, u.bundles + 1}
		return nil
	})
	if err != nil {
		return usage{}, err
	}
	for a, u := range nbr {
		if err := tx.Bucket(bktUseNbr).Put(append([]byte(nil), a[:]...), u.encode()); err != nil {
			return usage{}, err
		}
	}
	for a, u := range dst {
		if err := tx.Bucket(bktUseDest).Put(append([]byte(nil), a[:]...), u.encode()); err != nil {
			return usage{}, err
		}
	}
	meta := tx.Bucket(bktMeta)
	if err := meta.Put(keyTotal, total.encode()); err != nil {
		return usage{}, err
	}
	return total, meta.Put(keyUsageVer, putU64(usageVersion))
}

// Close flushes nothing (every write is already durable) and releases the file.
// Writes already handed to the committer finish first; later ones get
// ErrClosed. Closing twice is harmless.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.quit) })
	<-s.stopped
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: closing %s: %w", s.path, err)
	}
	return nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// Stats returns a snapshot of the usage counters. On a read error (the store
// is closed) it logs and returns what it has.
func (s *Store) Stats() Stats {
	st := Stats{ByNeighbour: map[bundle.Addr]int64{}, ByDest: map[bundle.Addr]int64{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		t := decodeUsage(tx.Bucket(bktMeta).Get(keyTotal))
		st.Bundles, st.Bytes = int(t.bundles), t.bytes
		fill := func(name []byte, m map[bundle.Addr]int64) error {
			return tx.Bucket(name).ForEach(func(k, v []byte) error {
				var a bundle.Addr
				copy(a[:], k)
				m[a] = decodeUsage(v).bytes
				return nil
			})
		}
		if err := fill(bktUseNbr, st.ByNeighbour); err != nil {
			return err
		}
		return fill(bktUseDest, st.ByDest)
	})
	if err != nil {
		s.log.Warn("store stats unavailable", "err", err)
	}
	return st
}
