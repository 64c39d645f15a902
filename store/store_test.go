package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ternmesh/tern/bundle"
)

// fakeClock is an injected clock the tests move by hand.
type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(1_700_000_000_000)
	return c
}

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "tern.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openAt opens the store at path, closed when the test ends.
func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// reopen closes s and opens the store at path again, as a restart does.
func reopen(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openAt(t, path)
}

func id(n int) bundle.ID {
	var i bundle.ID
	copy(i[:], fmt.Sprintf("id-%013d", n))
	return i
}

func addr(s string) bundle.Addr {
	var a bundle.Addr
	copy(a[:], s)
	return a
}

func rec(n int, dest, from, hop string, size int, expires int64) Record {
	return Record{ID: id(n), Dest: addr(dest), From: addr(from), NextHop: addr(hop),
		Raw: bytes.Repeat([]byte{byte(n)}, size), Expires: expires}
}

func mustPut(t *testing.T, s *Store, recs ...Record) {
	t.Helper()
	for i, err := range s.Put(recs...) {
		if err != nil {
			t.Fatalf("Put record %d (%x): %v", i, recs[i].ID[:], err)
		}
	}
}

func ids(rs []Record) []bundle.ID {
	var out []bundle.ID
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func sameIDs(t *testing.T, what string, got []Record, want ...bundle.ID) {
	t.Helper()
	g := ids(got)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("%s: got IDs %x, want %x", what, g, want)
	}
}

// checkCounters asserts Stats equals a fresh count of the stored records.
func checkCounters(t *testing.T, s *Store) Stats {
	t.Helper()
	st := s.Stats()
	want := Stats{ByNeighbour: map[bundle.Addr]int64{}, ByDest: map[bundle.Addr]int64{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktBundles).ForEach(func(k, v []byte) error {
			var i bundle.ID
			copy(i[:], k)
			r, _, err := decodeRecord(i, v)
			if err != nil {
				return err
			}
			want.Bundles++
			want.Bytes += int64(len(r.Raw))
			want.ByNeighbour[r.From] += int64(len(r.Raw))
			want.ByDest[r.Dest] += int64(len(r.Raw))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("counters drifted:\n Stats()  %+v\n recount  %+v", st, want)
	}
	return st
}

func TestPutGetDeleteAndDedupe(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	exp := clk.ms.Load() + 60_000
	r := rec(1, "dest", "nbr", "", 200, exp)
	mustPut(t, s, r)

	got, err := s.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Received != clk.ms.Load() {
		t.Errorf("Received = %d, want the clock's %d", got.Received, clk.ms.Load())
	}
	r.Received = got.Received
	if fmt.Sprint(got) != fmt.Sprint(r) {
		t.Fatalf("Get returned %+v, want %+v", got, r)
	}
	if !s.Has(r.ID) || s.Has(id(2)) {
		t.Fatal("Has: want true for the stored ID and false for another")
	}
	if _, err := s.Get(id(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing ID: %v, want ErrNotFound", err)
	}
	if err := s.Put(r)[0]; !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second Put: %v, want ErrDuplicate", err)
	}

	if got := s.Stored([]bundle.ID{r.ID, id(2)}); !got[0] || got[1] {
		t.Fatalf("Stored = %v, want [true false]", got)
	}
	if err := s.Delete(r.ID); err != nil {
		t.Fatal(err)
	}
	if got := s.Stored([]bundle.ID{r.ID}); got[0] {
		t.Fatal("Stored after Delete: want false (seen is not stored)")
	}
	if err := s.Delete(r.ID, id(99)); err != nil {
		t.Fatalf("deleting again or a missing ID should be harmless: %v", err)
	}
	if _, err := s.Get(r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if !s.Has(r.ID) {
		t.Fatal("a deleted ID must stay in the seen set until it expires")
	}
	if err := s.Put(r)[0]; !errors.Is(err, ErrDuplicate) {
		t.Fatalf("late copy after Delete: %v, want ErrDuplicate", err)
	}
	if st := checkCounters(t, s); st.Bundles != 0 || st.Bytes != 0 || len(st.ByDest) != 0 {
		t.Fatalf("after Delete the store should be empty: %+v", st)
	}
}

func TestPutDuplicateDoesNotFailOthers(t *testing.T) {
	s := openTest(t, Options{})
	exp := time.Now().Add(time.Hour).UnixMilli()
	a, b := rec(1, "d", "n", "", 10, exp), rec(2, "d", "n", "", 10, exp)
	bad := rec(3, "d", "n", "", 10, 0)
	errs := s.Put(a, a, bad, b)
	if errs[0] != nil || !errors.Is(errs[1], ErrDuplicate) || errs[2] == nil || errs[3] != nil {
		t.Fatalf("Put(a, a, no-expiry, b) = %v, want [nil ErrDuplicate error nil]", errs)
	}
	if !strings.Contains(errs[2].Error(), "Expires") {
		t.Errorf("missing-expiry error should name the field: %v", errs[2])
	}
	if st := checkCounters(t, s); st.Bundles != 2 {
		t.Fatalf("want 2 bundles stored, got %d", st.Bundles)
	}
}

func TestQueuesOldestFirst(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	exp := clk.ms.Load() + 3_600_000
	mustPut(t, s, rec(1, "alice", "n1", "", 10, exp), rec(2, "bob", "n1", "hopA", 10, exp))
	mustPut(t, s, rec(3, "alice", "n2", "", 10, exp))
	mustPut(t, s, rec(4, "alice", "", "hopA", 10, exp), rec(5, "carol", "", "", 10, exp))

	un, err := s.Unrouted(0)
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "Unrouted", un, id(1), id(3), id(5))
	un, _ = s.Unrouted(2)
	sameIDs(t, "Unrouted(2)", un, id(1), id(3))
	q, _ := s.ForNextHop(addr("hopA"), 0)
	sameIDs(t, "ForNextHop(hopA)", q, id(2), id(4))
	q, _ = s.ForNextHop(addr("hopB"), 0)
	sameIDs(t, "ForNextHop(hopB)", q)
	d, _ := s.ForDest(addr("alice"))
	sameIDs(t, "ForDest(alice)", d, id(1), id(3), id(4))

	// A route appears for alice: her unrouted bundles join hopA's queue in age order.
	if err := s.SetNextHop(addr("hopA"), id(3), id(1)); err != nil {
		t.Fatal(err)
	}
	q, _ = s.ForNextHop(addr("hopA"), 0)
	sameIDs(t, "hopA after SetNextHop", q, id(1), id(2), id(3), id(4))
	if q[0].NextHop != addr("hopA") {
		t.Fatalf("record's NextHop not updated: %x", q[0].NextHop)
	}
	un, _ = s.Unrouted(0)
	sameIDs(t, "Unrouted after SetNextHop", un, id(5))
	q, _ = s.ForNextHop(addr("hopA"), 3)
	sameIDs(t, "ForNextHop(hopA, 3)", q, id(1), id(2), id(3))

	// The route is lost; a missing ID is reported but does not stop the move.
	err = s.SetNextHop(bundle.Addr{}, id(2), id(42))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetNextHop with a missing ID: %v, want ErrNotFound", err)
	}
	un, _ = s.Unrouted(0)
	sameIDs(t, "Unrouted after route loss", un, id(2), id(5))
	if g, _ := s.Get(id(2)); g.NextHop != (bundle.Addr{}) {
		t.Fatalf("Get after SetNextHop(zero): NextHop %x", g.NextHop)
	}

	if err := s.Delete(id(1), id(2)); err != nil {
		t.Fatal(err)
	}
	q, _ = s.ForNextHop(addr("hopA"), 0)
	sameIDs(t, "hopA after Delete", q, id(3), id(4))
	d, _ = s.ForDest(addr("alice"))
	sameIDs(t, "ForDest after Delete", d, id(3), id(4))
	checkCounters(t, s)
}

func TestQuotas(t *testing.T) {
	exp := time.Now().Add(time.Hour).UnixMilli()
	s := openTest(t, Options{MaxBytes: 1000, MaxBytesPerNeighbour: 300, MaxBytesPerDest: 500})

	// Per neighbour: n1 may hold 300 bytes.
	mustPut(t, s, rec(1, "d1", "n1", "", 200, exp), rec(2, "d2", "n1", "", 100, exp))
	err := s.Put(rec(3, "d3", "n1", "", 1, exp))[0]
	var qe *QuotaError
	if !errors.Is(err, ErrQuota) || !errors.As(err, &qe) || qe.Quota != "neighbour" || qe.Used != 300 || qe.Addr != addr("n1") {
		t.Fatalf("over neighbour quota: %v (%+v)", err, qe)
	}
	for _, want := range []string{"neighbour", "300 of 300", "MaxBytesPerNeighbour"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("quota error %q does not mention %q", err, want)
		}
	}
	// Local applications are not limited per neighbour, only per destination.
	mustPut(t, s, rec(4, "d1", "", "", 300, exp))
	err = s.Put(rec(5, "d1", "n2", "", 1, exp))[0]
	if !errors.As(err, &qe) || qe.Quota != "destination" || qe.Used != 500 || !strings.Contains(err.Error(), "MaxBytesPerDest") {
		t.Fatalf("over destination quota: %v", err)
	}
	// Total: 600 held, 1000 allowed.
	mustPut(t, s, rec(6, "d4", "", "", 400, exp))
	err = s.Put(rec(7, "d5", "n4", "", 1, exp))[0]
	if !errors.As(err, &qe) || qe.Quota != "total" || qe.Used != 1000 || !strings.Contains(err.Error(), "MaxBytes") {
		t.Fatalf("over total quota: %v", err)
	}
	// A refused bundle is not marked seen: it can come back once there is room.
	if s.Has(id(7)) {
		t.Fatal("a bundle refused by quota must not enter the seen set")
	}
	if err := s.Delete(id(6)); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, rec(7, "d5", "n4", "", 1, exp))

	st := checkCounters(t, s)
	if st.ByNeighbour[addr("n1")] != 300 || st.ByDest[addr("d1")] != 500 || st.Bytes != 601 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestExpire(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	now := clk.ms.Load()
	mustPut(t, s,
		rec(1, "d", "n", "", 10, now+1000),
		rec(2, "d", "n", "h", 20, now+2000),
		rec(3, "e", "m", "", 30, now+3000),
	)
	if err := s.Delete(id(2)); err != nil { // seen until now+2000
		t.Fatal(err)
	}
	if err := s.MarkSeen(now+1500, id(9)); err != nil {
		t.Fatal(err)
	}

	if n, err := s.Expire(); n != 0 || err != nil {
		t.Fatalf("Expire before anything is due = %d, %v", n, err)
	}
	clk.ms.Store(now + 1000) // exactly at Expires: not yet past it
	if n, _ := s.Expire(); n != 0 {
		t.Fatalf("Expire at the expiry instant dropped %d", n)
	}
	clk.ms.Store(now + 2001)
	n, err := s.Expire()
	if err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1 bundle dropped", n, err)
	}
	if _, err := s.Get(id(1)); !errors.Is(err, ErrNotFound) {
		t.Fatal("expired bundle 1 still stored")
	}
	if _, err := s.Get(id(3)); err != nil {
		t.Fatalf("bundle 3 is not due yet: %v", err)
	}
	for _, i := range []int{1, 2, 9} {
		if s.Has(id(i)) {
			t.Errorf("seen entry %d should be gone after its expiry", i)
		}
	}
	if !s.Has(id(3)) {
		t.Error("bundle 3 must still be seen")
	}
	st := checkCounters(t, s)
	if st.Bundles != 1 || st.Bytes != 30 || len(st.ByNeighbour) != 1 || len(st.ByDest) != 1 {
		t.Fatalf("Stats after Expire = %+v", st)
	}
	// Once its seen entry expired, the same ID is accepted again.
	mustPut(t, s, rec(1, "d", "n", "", 10, now+10_000))

	clk.ms.Store(now + 20_000)
	if n, _ := s.Expire(); n != 2 {
		t.Fatalf("final Expire dropped %d, want 2", n)
	}
	if st := checkCounters(t, s); st.Bundles != 0 {
		t.Fatalf("store should be empty: %+v", st)
	}
}

func TestExpireManyInChunks(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	now := clk.ms.Load()
	var recs []Record
	for i := 0; i < expireChunk+500; i++ {
		recs = append(recs, rec(i, "d", "n", "", 8, now+int64(i%7)+1))
	}
	recs = append(recs, rec(-1, "d", "n", "", 8, now+100))
	mustPut(t, s, recs...)
	clk.ms.Store(now + 50)
	if n, err := s.Expire(); err != nil || n != expireChunk+500 {
		t.Fatalf("Expire = %d, %v; want %d", n, err, expireChunk+500)
	}
	if st := checkCounters(t, s); st.Bundles != 1 {
		t.Fatalf("want the one later bundle left, got %+v", st)
	}
}

func TestCountersRecomputedOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UnixMilli()
	mustPut(t, s, rec(1, "d1", "n1", "", 10, exp), rec(2, "d1", "n2", "", 20, exp), rec(3, "d2", "", "", 40, exp))
	want := checkCounters(t, s)
	// Lose the counters, as an older file or a hand repair would.
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bktUseNbr); err != nil {
			return err
		}
		if err := tx.Bucket(bktMeta).Put(keyTotal, usage{bytes: 1}.encode()); err != nil {
			return err
		}
		return tx.Bucket(bktMeta).Delete(keyUsageVer)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := checkCounters(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopen Stats = %+v, want %+v", got, want)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	s2, err := Open(path, Options{})
	took := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a held store succeeded")
	}
	want := "store " + path + " is in use by another tern process: stop it or use --data DIR"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if took > 2*time.Second {
		t.Fatalf("second Open took %v, want about 1 s", took)
	}
}

func TestConcurrentPutsAllDurableAndCounted(t *testing.T) {
	s := openTest(t, Options{})
	exp := time.Now().Add(time.Hour).UnixMilli()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				n := w*1000 + i
				// Every worker also offers a shared ID: exactly one wins.
				errs := s.Put(rec(n, "d", fmt.Sprint("n", w), "", 100, exp), rec(-7, "d", "x", "", 1, exp))
				if errs[0] != nil {
					select {
					case errc <- errs[0]:
					default:
					}
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if st := checkCounters(t, s); st.Bundles != 16*50+1 {
		t.Fatalf("stored %d bundles, want %d", st.Bundles, 16*50+1)
	}
}

func TestKV(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	kv := s.Bucket("messages")
	if v, err := kv.Get([]byte("nope")); v != nil || err != nil {
		t.Fatalf("Get on a new bucket = %q, %v; want nil, nil", v, err)
	}
	if k, v, err := kv.Last(); k != nil || v != nil || err != nil {
		t.Fatalf("Last on an empty bucket = %q %q %v", k, v, err)
	}
	for _, k := range []string{"b/2", "a/1", "b/1", "b/3", "c"} {
		if err := kv.Put([]byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Put(nil, []byte("x")); err == nil {
		t.Fatal("Put with an empty key should fail")
	}
	if err := kv.Put([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, _ := kv.Get([]byte("empty")); v == nil || len(v) != 0 {
		t.Fatalf("an empty value must read back as non-nil empty, got %v", v)
	}
	if err := kv.Delete([]byte("empty")); err != nil {
		t.Fatal(err)
	}
	var seen []string
	_ = kv.ForEach(func(k, v []byte) error { seen = append(seen, string(k)+"="+string(v)); return nil })
	if got := strings.Join(seen, " "); got != "a/1=va/1 b/1=vb/1 b/2=vb/2 b/3=vb/3 c=vc" {
		t.Fatalf("ForEach order: %s", got)
	}
	seen = nil
	stop := errors.New("stop")
	err = kv.ForEachPrefix([]byte("b/"), func(k, v []byte) error {
		seen = append(seen, string(k))
		if len(seen) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || strings.Join(seen, " ") != "b/1 b/2" {
		t.Fatalf("ForEachPrefix: %v %v", seen, err)
	}
	if k, v, _ := kv.LastPrefix([]byte("b/")); string(k) != "b/3" || string(v) != "vb/3" {
		t.Fatalf("LastPrefix(b/) = %q %q", k, v)
	}
	if k, _, _ := kv.LastPrefix([]byte("a")); string(k) != "a/1" {
		t.Fatalf("LastPrefix(a) = %q", k)
	}
	if k, _, _ := kv.LastPrefix([]byte("zz")); k != nil {
		t.Fatalf("LastPrefix(zz) = %q, want nil", k)
	}
	if k, _, _ := kv.Last(); string(k) != "c" {
		t.Fatalf("Last = %q", k)
	}
	// Names do not collide with the store's own buckets.
	if err := s.Bucket("bundles").Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if st := checkCounters(t, s); st.Bundles != 0 {
		t.Fatal("a KV named like an internal bucket changed the bundle store")
	}
	if err := kv.Delete([]byte("a/1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kv = s.Bucket("messages")
	if v, _ := kv.Get([]byte("b/2")); string(v) != "vb/2" {
		t.Fatalf("after reopen Get(b/2) = %q", v)
	}
	if v, _ := kv.Get([]byte("a/1")); v != nil {
		t.Fatalf("deleted key came back: %q", v)
	}
}

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "b", "a\xff": "b", "\xff\xff": "", "ab": "ac"} {
		if got := string(prefixEnd([]byte(in))); got != want {
			t.Errorf("prefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGroupCommitIsolatesAFailingWriter(t *testing.T) {
	s := openTest(t, Options{})
	kv := []byte(kvPrefix + "t")
	put := func(k string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(kv)
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte("v"))
		}
	}
	boom := errors.New("boom")
	group := []*call{
		{fn: put("a"), done: make(chan error, 1)},
		{fn: func(*bolt.Tx) error { return boom }, done: make(chan error, 1)},
		{fn: func(*bolt.Tx) error { panic("bad writer") }, done: make(chan error, 1)},
		{fn: put("b"), done: make(chan error, 1)},
	}
	s.commitGroup(group)
	if err := <-group[0].done; err != nil {
		t.Fatalf("writer a: %v", err)
	}
	if err := <-group[1].done; !errors.Is(err, boom) {
		t.Fatalf("failing writer got %v, want its own error", err)
	}
	if err := <-group[2].done; err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("panicking writer got %v", err)
	}
	if err := <-group[3].done; err != nil {
		t.Fatalf("writer b: %v", err)
	}
	for _, k := range []string{"a", "b"} {
		if v, _ := s.Bucket("t").Get([]byte(k)); string(v) != "v" {
			t.Fatalf("key %s from a healthy writer was not stored", k)
		}
	}
}

func TestWritesAfterCloseFail(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "tern.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	exp := time.Now().Add(time.Hour).UnixMilli()
	if err := s.Put(rec(1, "d", "n", "", 1, exp))[0]; !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	if err := s.Bucket("x").Put([]byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("KV Put after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Get(id(1)); err == nil {
		t.Fatal("Get after Close should fail")
	}
}

func TestAllListsEveryRecord(t *testing.T) {
	s := openTest(t, Options{})
	for i := range 3 {
		if err := s.Put(Record{ID: bundle.ID{byte(i + 1)}, Dest: bundle.Addr{9}, Raw: []byte("x"), Expires: 1 << 50})[0]; err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.All(0)
	if err != nil || len(all) != 3 {
		t.Fatalf("All = %d records, %v; want 3", len(all), err)
	}
	if two, _ := s.All(2); len(two) != 2 {
		t.Fatalf("All(2) = %d records", len(two))
	}
}

func TestReadmitABundleThatCameBack(t *testing.T) {
	s := openTest(t, Options{})
	r := Record{ID: bundle.ID{9}, Dest: bundle.Addr{1}, Raw: []byte("x"), Expires: 1 << 50}
	if err := s.Put(r)[0]; err != nil {
		t.Fatal(err)
	}
	r2 := r
	r2.Readmit = true
	if err := s.Put(r2)[0]; !errors.Is(err, ErrDuplicate) {
		t.Fatalf("re-admitting a stored bundle: %v, want ErrDuplicate", err)
	}
	if err := s.Delete(r.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(r)[0]; !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a late copy without Readmit: %v, want ErrDuplicate", err)
	}
	if err := s.Put(r2)[0]; err != nil {
		t.Fatalf("re-admitting a bundle that left and came back: %v", err)
	}
	if _, err := s.Get(r.ID); err != nil {
		t.Fatal(err)
	}
}

// TestCopyBudgetPersists: a delay-tolerant copy budget survives a restart,
// moves with SetCopies, and a record without one is written in the format
// older builds read.
func TestCopyBudgetPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.db")
	s := openAt(t, path)
	spare := rec(1, "dest", "from", "", 30, time.Now().Add(time.Hour).UnixMilli())
	spare.Copies = 4096
	plain := rec(2, "dest", "from", "hop", 30, time.Now().Add(time.Hour).UnixMilli())
	mustPut(t, s, spare, plain)
	if err := s.SetCopies(CopyUpdate{ID: spare.ID, Copies: 2048 + 7, NextHop: addr("hop")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCopies(CopyUpdate{ID: id(99), Copies: 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetCopies of a missing bundle: %v, want ErrNotFound", err)
	}
	s = reopen(t, s, path)
	got, err := s.Get(spare.ID)
	if err != nil || got.Copies != 2055 || got.NextHop != addr("hop") || !bytes.Equal(got.Raw, spare.Raw) {
		t.Fatalf("after restart: %+v, %v; want 2055 copies queued for hop", got, err)
	}
	queued, _ := s.HopIDs(addr("hop"), 0)
	if len(queued) != 2 || queued[0] != spare.ID || queued[1] != plain.ID {
		t.Fatalf("queue for hop %x, want both bundles in age order", queued)
	}
	if st := s.Stats(); st.Bundles != 2 || st.Bytes != 60 {
		t.Fatalf("usage %d bundles %d bytes, want 2 and 60: the budget must not count as bundle bytes", st.Bundles, st.Bytes)
	}
	all, _ := s.IDs(0)
	if len(all) != 2 {
		t.Fatalf("IDs lists %d, want 2", len(all))
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bktBundles).Get(plain.ID[:]); v[0] != recordVersion {
			t.Errorf("a record without a budget is written as version %d, want 1", v[0])
		}
		if v := tx.Bucket(bktBundles).Get(spare.ID[:]); v[0] != recordVersion3 || len(v) != record3Len+len(spare.Raw) || v[73] != 2055>>8 || v[74] != 2055&0xff {
			t.Errorf("a record with a budget is stored as %x, want version 3 with 2055 at offset 73, big-endian", v[:min(len(v), record3Len)])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(spare.ID, plain.ID); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Bundles != 0 || st.Bytes != 0 {
		t.Fatalf("after delete: %d bundles %d bytes", st.Bundles, st.Bytes)
	}
}

// version2Record builds, byte by byte, the value that builds before record
// version 3 wrote for r with a copy budget of copies (1-255): version 2, a
// 73-byte header, the budget in one byte at offset 73, then the bundle.
func version2Record(r *Record, seq uint64, copies byte) []byte {
	var b []byte
	b = append(b, 2)
	b = append(b, r.Dest[:]...)
	b = append(b, r.From[:]...)
	b = append(b, r.NextHop[:]...)
	for _, n := range []uint64{uint64(r.Received), uint64(r.Expires), seq} {
		for shift := 56; shift >= 0; shift -= 8 {
			b = append(b, byte(n>>shift))
		}
	}
	b = append(b, copies)
	return append(b, r.Raw...)
}

// TestVersion2RecordReadsBack: a record with a one-byte budget, as older
// builds wrote it, still reads with its copies after this build opens the
// store, and rewriting its budget stores it as version 3.
func TestVersion2RecordReadsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.db")
	s := openAt(t, path)
	r := rec(1, "dest", "from", "", 25, time.Now().Add(time.Hour).UnixMilli())
	r.Copies = 200
	mustPut(t, s, r)
	// Put gave the record its sequence and receive time; write the old
	// format over it with the same ones, as an older build would have.
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktBundles)
		stored, seq, err := decodeRecord(r.ID, b.Get(r.ID[:]))
		if err != nil {
			return err
		}
		old := version2Record(&stored, seq, 200)
		if len(old) != 74+len(r.Raw) {
			t.Fatalf("hand-built version 2 record is %d bytes, want %d", len(old), 74+len(r.Raw))
		}
		return b.Put(r.ID[:], old)
	})
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	got, err := s.Get(r.ID)
	if err != nil || got.Copies != 200 || got.Dest != r.Dest || got.From != r.From || !bytes.Equal(got.Raw, r.Raw) {
		t.Fatalf("version 2 record read back as %+v, %v; want 200 copies and the bundle", got, err)
	}
	if st := s.Stats(); st.Bundles != 1 || st.Bytes != 25 {
		t.Fatalf("usage %d bundles %d bytes, want 1 and 25", st.Bundles, st.Bytes)
	}
	if err := s.SetCopies(CopyUpdate{ID: r.ID, Copies: 300}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(r.ID); err != nil || got.Copies != 300 || !bytes.Equal(got.Raw, r.Raw) {
		t.Fatalf("after SetCopies: %+v, %v; want 300 copies", got, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bktBundles).Get(r.ID[:]); v[0] != recordVersion3 {
			t.Errorf("a rewritten budget is stored as version %d, want 3", v[0])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
