package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/crypto"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// small chunks so a test file has many.
var smallCfg = Config{ChunkSize: 4096, Window: 4, RetryAfter: time.Minute}

func chunksSent(log []sent) map[uint32]int {
	n := map[uint32]int{}
	for _, s := range log {
		if c, ok := s.msg.(*Chunk); ok {
			n[c.Index]++
		}
	}
	return n
}

func TestSendReceiveChunksWithProgress(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aEv := a.svc.Subscribe(ctx)

	data := randomBytes(100_000) // 25 chunks, the last 1,696 bytes
	out := sendBytes(t, a, b, "report.pdf", data, SendOptions{Mime: "application/pdf"})
	if out.State != StateQueued || out.Chunks != 25 || out.Size != 100_000 || out.Incoming {
		t.Fatalf("new transfer %+v", out)
	}
	done := waitState(t, a, StateDone)
	if done.Bytes != done.Size || done.Resent != 0 {
		t.Errorf("sender at the end: %d of %d bytes, %d resent; want all, none resent", done.Bytes, done.Size, done.Resent)
	}
	in := waitState(t, b, StateDone)
	if !in.Incoming || in.Name != "report.pdf" || in.Mime != "application/pdf" || in.Peer != a.addr.String() {
		t.Errorf("receiver sees %+v", in)
	}
	if in.Path != filepath.Join(b.dir, "files", "report.pdf") {
		t.Errorf("received file at %s, want DATA/files/report.pdf", in.Path)
	}
	checkReceived(t, b, in, data)
	// Progress events went up to the whole file.
	var last int64
	for e := range aEv {
		if e.File.Bytes < last {
			t.Fatalf("progress went back from %d to %d bytes", last, e.File.Bytes)
		}
		last = e.File.Bytes
		if e.File.State == StateDone {
			break
		}
	}
	sentCount := chunksSent(net.sentLog())
	for i := uint32(0); i < 25; i++ {
		if sentCount[i] != 1 {
			t.Errorf("chunk %d sent %d times, want once", i, sentCount[i])
		}
	}
	for _, s := range net.sentLog() {
		_, chunk := s.msg.(*Chunk)
		if s.bulk != chunk {
			t.Errorf("%T sent with bulk=%v: only chunks are bulk", s.msg, s.bulk)
		}
	}
	// The outbox copy goes once the transfer is done.
	waitUntil(t, "the outbox is empty", func() bool {
		es, _ := os.ReadDir(filepath.Join(a.dir, "files", ".outbox"))
		return len(es) == 0
	})
	if es, _ := os.ReadDir(filepath.Join(b.dir, "files", ".partial")); len(es) != 0 {
		t.Errorf("partial files left behind: %v", es)
	}
}

func TestWindowBoundsChunksInFlight(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg)
	net.drop = func(s sent) bool { _, ok := s.msg.(*Chunk); return ok } // no chunk arrives
	sendBytes(t, a, b, "big.bin", randomBytes(200_000), SendOptions{})
	waitUntil(t, "the window is full", func() bool { return len(chunksSent(net.sentLog())) == 4 })
	a.svc.pokeAll()
	waitUntil(t, "the transfer is accepted", func() bool { return a.only(t).State == StateSending })
	if n := len(chunksSent(net.sentLog())); n != 4 {
		t.Fatalf("%d chunks in flight with none acknowledged, want the window of 4", n)
	}
}

func TestLostChunksResentAfterRetryAfter(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg)
	lost := map[uint32]bool{3: true, 7: true}
	net.drop = func(s sent) bool {
		c, ok := s.msg.(*Chunk)
		if ok && lost[c.Index] {
			delete(lost, c.Index)
			return true
		}
		return false
	}
	data := randomBytes(40_000) // 10 chunks
	sendBytes(t, a, b, "photo.jpg", data, SendOptions{})
	waitUntil(t, "all but the lost chunks are acknowledged", func() bool { return a.only(t).Bytes == int64(40_000-2*4096) })
	if a.only(t).State != StateSending {
		t.Fatalf("state %s with two chunks missing", a.only(t).State)
	}
	clk.Advance(59 * time.Second)
	a.svc.pokeAll()
	clk.Advance(2 * time.Second) // past RetryAfter
	a.svc.pokeAll()
	done := waitState(t, a, StateDone)
	if done.Resent != 2 {
		t.Errorf("%d chunks resent, want the 2 lost ones", done.Resent)
	}
	checkReceived(t, b, waitState(t, b, StateDone), data)
	if n := chunksSent(net.sentLog()); n[3] != 2 || n[7] != 2 || n[0] != 1 {
		t.Errorf("sends per chunk %v: want the lost chunks twice, the others once", n)
	}
}

// TestResumeAfterRestartOfBothSides: both sides stop mid-transfer (store
// closed and reopened); the transfer goes on without sending any chunk
// twice.
func TestResumeAfterRestartOfBothSides(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg)
	data := randomBytes(160_000) // 40 chunks
	sendBytes(t, a, b, "map.tiles", data, SendOptions{})
	waitUntil(t, "a quarter is acknowledged", func() bool { return a.only(t).Bytes >= 40_000 })
	net.pause()
	mid := a.only(t).Bytes
	a.restart()
	b.restart()
	if got := a.only(t); got.State != StateSending || got.Bytes != mid {
		t.Fatalf("after the restart the sender shows %s at %d bytes, want sending at %d", got.State, got.Bytes, mid)
	}
	if got := b.only(t); got.State != StateReceiving || got.Bytes < mid {
		t.Fatalf("after the restart the receiver shows %s at %d bytes, want receiving at >= %d", got.State, got.Bytes, mid)
	}
	net.resume()
	done := waitState(t, a, StateDone)
	checkReceived(t, b, waitState(t, b, StateDone), data)
	if done.Resent != 0 {
		t.Errorf("%d chunks resent after the restart, want none", done.Resent)
	}
	for i, n := range chunksSent(net.sentLog()) {
		if n != 1 {
			t.Errorf("chunk %d sent %d times", i, n)
		}
	}
}

func TestDamagedFileRefused(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg)
	// Someone on the way changes one byte of chunk 1 (the session would
	// catch that; a buggy or lying sender would not).
	net.mutate = func(s sent, data []byte) []byte {
		if c, ok := s.msg.(*Chunk); ok && c.Index == 1 {
			data[len(data)-1] ^= 0xff
		}
		return data
	}
	sendBytes(t, a, b, "notes.txt", randomBytes(10_000), SendOptions{})
	in := waitState(t, b, StateFailed)
	if !strings.Contains(in.Error, "SHA-256") || !strings.Contains(in.Error, "send it again") {
		t.Errorf("receiver's error %q, want the hash mismatch and what to do", in.Error)
	}
	out := waitState(t, a, StateFailed)
	if !strings.Contains(out.Error, "refused by the receiver") || !strings.Contains(out.Error, "damaged") {
		t.Errorf("sender's error %q, want the receiver's refusal", out.Error)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "files", "notes.txt")); !os.IsNotExist(err) {
		t.Errorf("a damaged file was kept: %v", err)
	}
	if es, _ := os.ReadDir(filepath.Join(b.dir, "files", ".partial")); len(es) != 0 {
		t.Errorf("partial data of a damaged file left: %v", es)
	}
	if _, _, err := b.svc.Open(in.ID); err == nil {
		t.Error("a failed transfer offers a download")
	}
}

func TestCancelBySenderAndByReceiver(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg)
	net.drop = func(s sent) bool { c, ok := s.msg.(*Chunk); return ok && c.Index >= 2 } // stalls
	tr := sendBytes(t, a, b, "one.bin", randomBytes(50_000), SendOptions{})
	waitUntil(t, "receiving", func() bool { return len(b.svc.List()) == 1 && b.only(t).Bytes > 0 })
	if _, err := a.svc.Cancel(tr.ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the receiver learns of the cancellation", func() bool { return b.only(t).State == StateCancelled })
	if e := b.only(t).Error; !strings.Contains(e, "sender cancelled") {
		t.Errorf("receiver's note %q", e)
	}
	// A finished transfer is forgotten by a second cancel.
	if _, err := b.svc.Cancel(b.only(t).ID); err != nil || len(b.svc.List()) != 0 {
		t.Fatalf("forgetting a cancelled transfer: %v, %d left", err, len(b.svc.List()))
	}

	tr = sendBytes(t, a, b, "two.bin", randomBytes(50_000), SendOptions{})
	waitUntil(t, "receiving the second", func() bool { return len(b.svc.List()) == 1 && b.only(t).Bytes > 0 })
	if _, err := b.svc.Cancel(b.only(t).ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the sender learns the receiver cancelled", func() bool {
		got, _ := a.svc.Get(tr.ID)
		return got.State == StateFailed && strings.Contains(got.Error, "receiver cancelled")
	})
}

func TestTooLargeRefused(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	small := smallCfg
	small.MaxSize = 1000
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, small)
	sendBytes(t, a, b, "video.mp4", randomBytes(5000), SendOptions{})
	out := waitState(t, a, StateFailed)
	if !strings.Contains(out.Error, "accepts files up to 1000 bytes") {
		t.Errorf("error %q, want the receiver's limit", out.Error)
	}
	if len(b.svc.List()) != 0 {
		t.Error("the receiver recorded a file it refused")
	}
	// And the sender's own limit.
	if _, err := b.svc.Send([]crypto.Address{a.addr}, "x", bytes.NewReader(make([]byte, 1001)), SendOptions{}); err == nil || !strings.Contains(err.Error(), "larger than 1000") {
		t.Errorf("sending over MaxSize: %v", err)
	}
}

func TestEmptyFileAndSameNameTwice(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg)
	sendBytes(t, a, b, "empty.txt", nil, SendOptions{})
	waitUntil(t, "the empty file arrives", func() bool { return len(b.svc.List()) == 1 && b.only(t).State == StateDone })
	checkReceived(t, b, b.only(t), []byte{})
	for _, body := range []string{"first", "second"} {
		sendBytes(t, a, b, "same.txt", []byte(body), SendOptions{})
	}
	waitUntil(t, "both arrive", func() bool {
		n := 0
		for _, tr := range b.svc.List() {
			if tr.State == StateDone {
				n++
			}
		}
		return n == 3
	})
	got := map[string]string{}
	for _, tr := range b.svc.List() {
		body, _ := os.ReadFile(tr.Path)
		got[filepath.Base(tr.Path)] = string(body)
	}
	if len(got) != 3 || got["same.txt"] == "" || got["same (2).txt"] == "" || got["same.txt"] == got["same (2).txt"] {
		t.Errorf("files kept: %v; want same.txt and same (2).txt with different bodies", got)
	}
}

func TestSendToSeveral(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b, c := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg), newPeer(t, net, 'c', clk, smallCfg)
	data := randomBytes(30_000)
	ts, err := a.svc.Send([]crypto.Address{b.addr, c.addr}, "minutes.odt", bytes.NewReader(data), SendOptions{})
	if err != nil || len(ts) != 2 || ts[0].ID == ts[1].ID {
		t.Fatalf("Send to two: %v %+v", err, ts)
	}
	checkReceived(t, b, waitState(t, b, StateDone), data)
	checkReceived(t, c, waitState(t, c, StateDone), data)
	waitUntil(t, "both sends are done", func() bool {
		ts := a.svc.List()
		return ts[0].State == StateDone && ts[1].State == StateDone
	})
}

func TestMalformedAndForeignMessagesRefused(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg)
	tr := sendBytes(t, a, b, "x.bin", randomBytes(9000), SendOptions{})
	waitState(t, a, StateDone)
	// An ack from someone who is not the recipient is refused.
	ack, _ := (&Ack{ID: [16]byte(mustHex(t, tr.ID)), Status: AckRefused, Reason: "no"}).Marshal()
	if err := deliverRaw(a.svc, crypto.Address{'m'}, ack); err == nil || !strings.Contains(err.Error(), "did not send") {
		t.Errorf("ack from a stranger: %v", err)
	}
	// An offer whose name climbs out of the directory never decodes.
	o := Offer{ID: [16]byte{9}, Size: 1, ChunkSize: 10, Chunks: 1, Name: "ok"}
	raw, _ := o.Marshal()
	evil := append(append(append([]byte{}, raw[:65]...), byte(len("../../.ssh/authorized_keys"))), "../../.ssh/authorized_keys"...)
	evil = append(evil, 0)
	err := deliverRaw(b.svc, a.addr, evil)
	if err == nil || !strings.Contains(err.Error(), "path separator") {
		t.Errorf("offer named ../../.ssh/authorized_keys: %v, want it refused as malformed naming the separator", err)
	}
	if err := deliverRaw(b.svc, a.addr, []byte{0x7f}); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("garbage: %v", err)
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":                      "report.pdf",
		"/home/sam/report.pdf":            "report.pdf",
		`C:\Users\sam\report.pdf`:         "report.pdf",
		"../../etc/passwd":                "passwd",
		" spaced .txt ":                   "spaced .txt",
		"tab\there":                       "tab_here",
		strings.Repeat("a", 300) + ".txt": strings.Repeat("a", 251) + ".txt",
	} {
		got, err := CleanName(in)
		if err != nil || got != want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/", "..", "dir/..", "  "} {
		if got, err := CleanName(bad); err == nil || !strings.Contains(err.Error(), "no usable name") {
			t.Errorf("CleanName(%q) = %q, %v; want an error saying no name is left", bad, got, err)
		}
	}
	for _, bad := range []string{"a/b", `a\b`, ".", "..", " a", "a\x00", "a\nb", string([]byte{0xff})} {
		if CheckName(bad) == nil {
			t.Errorf("CheckName(%q) accepted it", bad)
		}
	}
}

func TestSet(t *testing.T) {
	var s Set
	for _, i := range []uint32{5, 1, 2, 0, 9, 3} {
		s = s.Add(i)
	}
	if want := (Set{{0, 4}, {5, 6}, {9, 10}}); !equalSets(s, want) {
		t.Fatalf("set %v, want %v", s, want)
	}
	if !s.Has(3) || s.Has(4) || !s.Has(9) || s.Has(10) || s.Count() != 6 {
		t.Errorf("Has/Count wrong on %v", s)
	}
	s = s.Union(Set{{4, 5}, {6, 9}})
	if !equalSets(s, Set{{0, 10}}) {
		t.Errorf("union %v", s)
	}
	// 10 chunks of 100 bytes, the last one 50: 950 bytes.
	if got := s.Bytes(950, 100); got != 950 {
		t.Errorf("Bytes = %d, want 950", got)
	}
	if got := (Set{{0, 2}}).Bytes(950, 100); got != 200 {
		t.Errorf("Bytes of two full chunks = %d", got)
	}
}

func equalSets(a, b Set) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFormatDoc(t *testing.T) {
	doc, err := os.ReadFile("FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	var id [16]byte
	for i := range id {
		id[i] = byte(i + 1)
	}
	o := Offer{ID: id, Size: 11, SHA256: sha256.Sum256([]byte("hello world")), ChunkSize: 49152, Chunks: 1, Name: "hello.txt", Mime: "text/plain"}
	c := Chunk{ID: id, Index: 0, Data: []byte("hello world")}
	a := Ack{ID: id, Status: AckReceiving, Have: Set{{0, 3}, {5, 6}}}
	g := o
	for i := range g.Group {
		g.Group[i] = byte(0xa0 + i)
	}
	g.GroupEpoch = 3
	for _, m := range []interface{ Marshal() ([]byte, error) }{&o, &g, &c, &a} {
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), hexOf(b)) {
			t.Errorf("FORMAT.md does not show the %T example %s", m, hexOf(b))
		}
	}
	// A full default chunk fits an application message.
	full, _ := (&Chunk{ID: id, Data: make([]byte, DefaultChunkSize)}).Marshal()
	if len(full) != 49_173 || len(full) > 64<<10 {
		t.Errorf("a 48 KiB chunk encodes to %d bytes", len(full))
	}
}

// radioOnly says every path is a radio link.
type radioOnly struct{}

func (radioOnly) BulkProblem(dest bundle.Addr, size int64) string {
	return "held off radio: a file transfer of " + strconv.FormatInt(size, 10) + " B would take about 1h of airtime; send it with --over-radio to allow it"
}

func TestHeldOffRadioUntilTheUserAllowsIt(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	cfg := smallCfg
	cfg.Paths = radioOnly{}
	a, b := newPeer(t, net, 'a', clk, cfg), newPeer(t, net, 'b', clk, smallCfg)
	net.drop = func(s sent) bool { _, ok := s.msg.(*Chunk); return ok && s.bulk } // the router would hold these
	tr := sendBytes(t, a, b, "scan.png", randomBytes(20_000), SendOptions{})
	if !strings.Contains(tr.Note, "held off radio") || !strings.Contains(tr.Note, "20000 B") {
		t.Errorf("note %q, want why it waits and its size", tr.Note)
	}
	waitUntil(t, "the window of bulk chunks is out", func() bool { return len(chunksSent(net.sentLog())) == 4 })
	after, err := a.svc.SetOverRadio(tr.ID)
	if err != nil || !after.OverRadio || after.Note != "" {
		t.Fatalf("SetOverRadio: %+v %v", after, err)
	}
	// The held chunks left this node (the fake keeps none), so they go
	// again, this time allowed on radio, once RetryAfter has passed.
	clk.Advance(2 * time.Minute)
	a.svc.pokeAll()
	waitState(t, b, StateDone)
	for _, s := range net.sentLog() {
		if c, ok := s.msg.(*Chunk); ok && s.bulk && c.Index >= 4 {
			t.Errorf("chunk %d went as bulk after the user allowed radio", c.Index)
		}
	}
}

// TestSilentReceiverGetsNoPileOfCopies: chunks that left this node (a
// relay holds them for a receiver that is offline) are not sent again and
// again while the receiver says nothing: after one retry, the next waits
// for an answer from the receiver or 16 RetryAfter.
func TestSilentReceiverGetsNoPileOfCopies(t *testing.T) {
	net := newFakeNet(t)
	clk := &clock{t: t0}
	a, b := newPeer(t, net, 'a', clk, smallCfg), newPeer(t, net, 'b', clk, smallCfg)
	net.drop = func(s sent) bool { _, ok := s.msg.(*Chunk); return ok }
	sendBytes(t, a, b, "log.txt", randomBytes(40_000), SendOptions{})
	waitUntil(t, "the first window is out", func() bool { return a.svc.inFlight() == 4 })
	sends := func() int {
		n := 0
		for _, c := range chunksSent(net.sentLog()) {
			n += c
		}
		return n
	}
	clk.Advance(61 * time.Second) // the offer's ack came at t0: one retry
	a.svc.pokeAll()
	waitUntil(t, "the window is sent again", func() bool { return sends() == 8 && a.svc.resent() == 4 })
	clk.Advance(5 * time.Minute) // past the backoff, but the receiver is silent
	a.svc.pokeAll()
	time.Sleep(50 * time.Millisecond) // nothing should happen: give it the chance
	if n := sends(); n != 8 {
		t.Fatalf("%d chunk sends to a silent receiver after 5 min, want still 8", n)
	}
	clk.Advance(12 * time.Minute) // 16 RetryAfter since the retry
	a.svc.pokeAll()
	waitUntil(t, "the window goes a third time", func() bool { return sends() == 12 })
}
