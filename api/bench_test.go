package api

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/node"
)

// BenchmarkSendThroughAPI measures messages a node accepts per second
// through its local API (unix socket, JSON, sealing, durable queueing),
// with 8 clients at once, as the web UI and CLI would send them.
func BenchmarkSendThroughAPI(b *testing.B) {
	dir := b.TempDir()
	n, err := node.Open(node.Config{DataDir: dir, Name: "bench", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(node.Links{}, nil); err != nil {
		b.Fatal(err)
	}
	peer, _ := crypto.GenerateIdentity(rand.Reader)
	card, _ := peer.NewCard("peer", nil, time.Now(), time.Hour)
	if _, err := n.Chat().AddContact(card, "peer"); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(n, slog.New(slog.DiscardHandler))}
	go srv.Serve(ln)
	defer srv.Close()
	c := NewClient(sock)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if err := c.Do(ctx, "POST", "/v1/messages", Send{To: "peer", Text: "are the roads to the clinic open?"}, nil); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "messages/s")
	b.ReportMetric(0, "ns/op")
}
