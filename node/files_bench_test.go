package node

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/transports"
)

// BenchmarkFileTransferMem: a 20 MB file between two nodes over an
// in-memory link (stores, sessions and router real): the file layer's own
// cost, without QUIC. Reports MB/s.
func BenchmarkFileTransferMem(b *testing.B) {
	data := make([]byte, 20<<20)
	rand.Read(data)
	for i := 0; i < b.N; i++ {
		net := transports.NewMemNetwork(transports.MemNetworkConfig{})
		x := benchNode(b, net, "alice")
		y := benchNode(b, net, "bob")
		x.Chat().AddContact(y.Card(), "bob")
		x.AddPeer("mem://bob")
		start := time.Now()
		if _, err := x.Files().Send([]crypto.Address{y.Identity().Address()}, "bench.bin", bytes.NewReader(data), files.SendOptions{}); err != nil {
			b.Fatal(err)
		}
		for {
			ts := y.Files().List()
			if len(ts) == 1 && ts[0].State == files.StateDone {
				break
			}
			if time.Since(start) > 2*time.Minute {
				b.Fatal("transfer did not finish in 2 minutes")
			}
			time.Sleep(time.Millisecond)
		}
		el := time.Since(start)
		b.ReportMetric(float64(len(data))/1e6/el.Seconds(), "MB/s")
		x.Close()
		y.Close()
	}
}

func benchNode(b *testing.B, net *transports.MemNetwork, name string) *Node {
	n, err := Open(Config{DataDir: b.TempDir(), Name: name, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	self := [16]byte(n.Identity().Address())
	mn := net.WithSelf(self)
	ln, err := mn.Listen(name, self)
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(Links{Dialers: map[string]transports.Dialer{"mem": mn}, Listeners: []transports.Listener{ln}}, nil); err != nil {
		b.Fatal(err)
	}
	return n
}
