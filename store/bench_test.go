package store

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

// benchCallers is how many goroutines per GOMAXPROCS offer records at once,
// like the link and router goroutines of a busy node.
const benchCallers = 64

func benchRecord(n uint64, exp int64) Record {
	var i bundle.ID
	binary.BigEndian.PutUint64(i[:], n)
	var d bundle.Addr
	d[0] = byte(n % 16)
	return Record{ID: i, Dest: d, From: bundle.Addr{1}, Raw: make([]byte, 200), Expires: exp}
}

// BenchmarkPutDurable measures small (200-byte) bundles stored durably by
// parallel callers, each Put returning only after its fsync.
func BenchmarkPutDurable(b *testing.B) {
	s := openTest(b, Options{})
	exp := time.Now().Add(time.Hour).UnixMilli()
	var next atomic.Uint64
	b.SetParallelism(benchCallers)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Put(benchRecord(next.Add(1), exp))[0]; err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if c := s.commits.Load(); c > 0 {
		b.ReportMetric(float64(c)/b.Elapsed().Seconds(), "commits/s")
	}
}

// BenchmarkPutDelete is a forwarding node's cycle: store a bundle durably,
// then delete it durably once the next hop took custody.
func BenchmarkPutDelete(b *testing.B) { benchPutDelete(b, Options{}) }

// BenchmarkPutDeleteBoltBatch is BenchmarkPutDelete on bbolt's timer-based
// DB.Batch instead of the store's committer, for comparison.
func BenchmarkPutDeleteBoltBatch(b *testing.B) { benchPutDelete(b, Options{useBoltBatch: true}) }

func benchPutDelete(b *testing.B, opts Options) {
	s := openTest(b, opts)
	exp := time.Now().Add(time.Hour).UnixMilli()
	var next atomic.Uint64
	b.SetParallelism(benchCallers)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := benchRecord(next.Add(1), exp)
			if err := s.Put(r)[0]; err != nil {
				b.Error(err)
				return
			}
			if err := s.Delete(r.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if c := s.commits.Load(); c > 0 {
		b.ReportMetric(float64(c)/b.Elapsed().Seconds(), "commits/s")
	}
}
