package node

import (
	"bytes"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/transports"
)

// openNode opens and starts a node in dir listening as name, waiting for
// the name to be free (a node just closed releases it asynchronously).
func openNode(t *testing.T, net *transports.MemNetwork, dir, name string, fc files.Config, log *slog.Logger) *Node {
	t.Helper()
	n, err := Open(Config{DataDir: dir, Name: name, Logger: log.With("name", name), Files: fc})
	if err != nil {
		t.Fatal(err)
	}
	self := [16]byte(n.Identity().Address())
	mn := net.WithSelf(self)
	var ln *transports.MemListener
	waitUntil(t, name+" can listen", func() bool {
		ln, err = mn.Listen(name, self)
		return err == nil
	})
	if err := n.Start(Links{Dialers: map[string]transports.Dialer{"mem": mn}, Listeners: []transports.Listener{ln}}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// failureLog collects the nodes' logs and prints them if the test fails.
func failureLog(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("node logs:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func transferOf(t *testing.T, n *Node) files.Transfer {
	t.Helper()
	ts := n.Files().List()
	if len(ts) != 1 {
		t.Fatalf("%d transfers, want 1", len(ts))
	}
	return ts[0]
}

func waitBytes(t *testing.T, what string, n *Node, atLeast int64) {
	t.Helper()
	// Generous: a reconnect after a restart follows the dial backoff, and
	// the machine may be busy.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ts := n.Files().List(); len(ts) == 1 && ts[0].Bytes >= atLeast {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s: %+v", what, n.Files().List())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestFileTransferAcrossRestartsAndALinkCut: a file goes from alice to bob
// over a real store and router on both sides while bob restarts, alice
// restarts and the link is cut, each mid-transfer; bob ends with the same
// bytes and alice never sends a chunk twice.
func TestFileTransferAcrossRestartsAndALinkCut(t *testing.T) {
	net := transports.NewMemNetwork(transports.MemNetworkConfig{})
	fc := files.Config{ChunkSize: 16 << 10, Window: 4}
	dirA, dirB := t.TempDir(), t.TempDir()
	log := failureLog(t)
	a := openNode(t, net, dirA, "alice", fc, log)
	b := openNode(t, net, dirB, "bob", fc, log)
	if _, err := a.Chat().AddContact(b.Card(), "bob"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddPeer("mem://bob"); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+123) // 193 chunks
	rand.Read(data)
	sent, err := a.Files().Send([]crypto.Address{b.Identity().Address()}, "survey.tar", bytes.NewReader(data), files.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))

	waitBytes(t, "bob holds a quarter", b, size/4)
	b.Close()
	b = openNode(t, net, dirB, "bob", fc, log)
	if got := transferOf(t, b); got.State != files.StateReceiving || got.Bytes < size/4 {
		t.Fatalf("after bob's restart: %s at %d bytes", got.State, got.Bytes)
	}

	waitBytes(t, "alice has half acknowledged", a, size/2)
	a.Close()
	a = openNode(t, net, dirA, "alice", fc, log) // the saved link to bob comes back

	waitBytes(t, "alice has three quarters acknowledged", a, 3*size/4)
	if err := a.RemovePeer("mem://bob"); err != nil {
		t.Fatal(err)
	}
	mid := transferOf(t, a).Bytes
	if err := a.AddPeer("mem://bob"); err != nil {
		t.Fatal(err)
	}

	waitUntil(t, "bob has the file", func() bool { return transferOf(t, b).State == files.StateDone })
	got, err := os.ReadFile(transferOf(t, b).Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's file: %v, %d bytes, equal %v", err, len(got), bytes.Equal(got, data))
	}
	waitUntil(t, "alice sees it done", func() bool { return transferOf(t, a).State == files.StateDone })
	out := transferOf(t, a)
	if out.ID != sent[0].ID || out.Bytes != size || out.Resent != 0 {
		t.Errorf("alice's transfer at the end: %+v; want done, all bytes, nothing resent (cut at %d)", out, mid)
	}
	// Nothing of the transfer stays in either store.
	waitUntil(t, "the stores drain", func() bool {
		return a.Store().Stats().Bundles == 0 && b.Store().Stats().Bundles == 0
	})
}
