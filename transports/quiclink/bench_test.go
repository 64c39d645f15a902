package quiclink

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// rawPair is a plain quic-go connection with the same TLS and QUIC settings
// as a Link, carrying the same 4-byte length framing on one stream: the
// baseline a Link is measured against.
func rawPair(b *testing.B, srv, cli *Transport) (w *quic.SendStream, r *quic.ReceiveStream) {
	b.Helper()
	ln, err := quic.ListenAddr("127.0.0.1:0", srv.serverTLS(), srv.qconf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := cli.baseTLS()
	c.InsecureSkipVerify = true
	conn, err := cli.qt.Dial(ctx, ln.Addr(), c, cli.qconf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.CloseWithError(0, "") })
	sconn, err := ln.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if w, err = conn.OpenUniStream(); err != nil {
		b.Fatal(err)
	}
	if _, err := w.Write([]byte{kindBulk}); err != nil {
		b.Fatal(err)
	}
	if r, err = sconn.AcceptUniStream(ctx); err != nil {
		b.Fatal(err)
	}
	var kind [1]byte
	if _, err := io.ReadFull(r, kind[:]); err != nil {
		b.Fatal(err)
	}
	return w, r
}

// BenchmarkBulk1MiB sends 1 MiB frames through a Link and through raw
// quic-go streams, interleaved in rounds so all see the same machine load.
// ratio-vs-raw (budget >= 0.9) compares with a raw reader that allocates
// each frame, as the Link contract requires; ratio-vs-raw-reuse compares
// with one that reuses a single buffer, to show what that allocation costs.
func BenchmarkBulk1MiB(b *testing.B) {
	const size, round = 1 << 20, 8
	idA, idB := newIdentity(b, 1), newIdentity(b, 2)
	srv := newTransport(b, idB, true, nil)
	cli := newTransport(b, idA, false, nil)
	la, lb := connect(b, cli, srv, idB.addr)
	w, r := rawPair(b, srv, cli)
	ctx := context.Background()
	payload := make([]byte, size)
	hdr := binary.BigEndian.AppendUint32(nil, size)
	rbuf := make([]byte, size)

	runLink := func(n int) time.Duration {
		start := time.Now()
		errc := make(chan error, 1)
		go func() {
			for i := 0; i < n; i++ {
				if err := la.Send(ctx, payload); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		for i := 0; i < n; i++ {
			f, err := lb.Recv(ctx)
			if err != nil || len(f) != size {
				b.Fatalf("link Recv: %d bytes, %v", len(f), err)
			}
			lb.Release(f) // as the router does once the frame is stored
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// runRaw sends the same framing over the raw stream. With reuse the
	// reader fills one buffer over and over (nothing a Link may do, since
	// Recv hands each frame to the caller); without it, it allocates each
	// frame as a Link must.
	runRaw := func(n int, reuse bool) time.Duration {
		start := time.Now()
		errc := make(chan error, 1)
		go func() {
			for i := 0; i < n; i++ {
				if _, err := w.Write(hdr); err != nil {
					errc <- err
					return
				}
				if _, err := w.Write(payload); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		for i := 0; i < n; i++ {
			var h [headerLen]byte
			if _, err := io.ReadFull(r, h[:]); err != nil || binary.BigEndian.Uint32(h[:]) != size {
				b.Fatalf("raw read header: %v", err)
			}
			buf := rbuf
			if !reuse {
				buf = make([]byte, size)
			}
			if _, err := io.ReadFull(r, buf); err != nil {
				b.Fatalf("raw read: %v", err)
			}
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	runLink(round) // warm up both paths (congestion window, flow-control windows)
	runRaw(round, false)

	b.ResetTimer()
	var linkT, rawT, reuseT time.Duration
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		linkT += runLink(n)
		rawT += runRaw(n, false)
		reuseT += runRaw(n, true)
	}
	b.StopTimer()
	mb := float64(b.N) * size / 1e6
	linkRate, rawRate, reuseRate := mb/linkT.Seconds(), mb/rawT.Seconds(), mb/reuseT.Seconds()
	b.ReportMetric(linkRate, "link-MB/s")
	b.ReportMetric(rawRate, "raw-MB/s")
	b.ReportMetric(reuseRate, "raw-reuse-MB/s")
	b.ReportMetric(linkRate/rawRate, "ratio-vs-raw")
	b.ReportMetric(linkRate/reuseRate, "ratio-vs-raw-reuse")
}

// BenchmarkSmallFrames pushes 64-byte frames through a Link as fast as it
// takes them and reports frames per second at the receiver.
func BenchmarkSmallFrames(b *testing.B) {
	idA, idB := newIdentity(b, 1), newIdentity(b, 2)
	srv := newTransport(b, idB, true, nil)
	cli := newTransport(b, idA, false, nil)
	la, lb := connect(b, cli, srv, idB.addr)
	ctx := context.Background()
	payload := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if err := la.Send(ctx, payload); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := 0; i < b.N; i++ {
		if f, err := lb.Recv(ctx); err != nil || len(f) != 64 {
			b.Fatalf("Recv: %d bytes, %v", len(f), err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
}
