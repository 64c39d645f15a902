package main

import (
	"encoding/binary"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/call"
	"github.com/ternmesh/tern/web"
)

// mediaSocket opens the media socket of call id on the daemon whose UI
// link is link, as a browser page would (token as a subprotocol).
func mediaSocket(t *testing.T, link, id string) *websocket.Conn {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimPrefix(u.Fragment, "token=")
	cfg, err := websocket.NewConfig("ws://"+u.Host+"/v1/calls/"+id+"/media", "http://"+u.Host)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = []string{api.MediaProtocol, web.TokenProtocolPrefix + token}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("media socket of call %s: %v", id, err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func (d *daemon) calls() []call.Record {
	var recs []call.Record
	d.do("GET", "/v1/calls", nil, &recs)
	return recs
}

func (d *daemon) callState(id string) string {
	for _, r := range d.calls() {
		if r.ID == id {
			return r.State
		}
	}
	return ""
}

// TestCallMediaSocketsBetweenTwoDaemons drives a call through the daemons'
// own API and media sockets, with Go playing the two browsers: frames both
// ways over the whole path (socket, seal, router, QUIC datagram, router,
// open, socket), stats messages on the socket, and closing a socket hangs
// up. It logs the one-way time of a frame through that path.
func TestCallMediaSocketsBetweenTwoDaemons(t *testing.T) {
	a, linkA := startWebDaemon(t, "alice")
	b, linkB := startWebDaemon(t, "bob")
	a.addContact(b)
	b.addContact(a)
	a.addPeer(b)
	waitFor(t, "alice and bob have live routes", func() bool { return a.hasRoute(b) && b.hasRoute(a) })

	var rec call.Record
	a.do("POST", "/v1/calls", api.StartCall{To: "bob"}, &rec)
	waitFor(t, "bob's call rings", func() bool { return b.callState(rec.ID) == call.StateRinging })
	b.do("POST", "/v1/calls/"+rec.ID+"/accept", nil, nil)
	waitFor(t, "alice sees the answer", func() bool { return a.callState(rec.ID) == call.StateActive })
	wa, wb := mediaSocket(t, linkA, rec.ID), mediaSocket(t, linkB, rec.ID)

	// Bob's side reads frames and stats while alice sends.
	const frames = 300
	type result struct {
		lat   []time.Duration
		stats *call.Stats
	}
	done := make(chan result, 1)
	go func() {
		var r result
		wb.SetReadDeadline(time.Now().Add(20 * time.Second))
		for len(r.lat) < frames || r.stats == nil || r.stats.FramesReceived < frames {
			var msg []byte
			if err := websocket.Message.Receive(wb, &msg); err != nil {
				break
			}
			if len(msg) > 0 && msg[0] == '{' {
				var m api.MediaMessage
				if json.Unmarshal(msg, &m) == nil && m.Type == "stats" {
					r.stats = m.Stats
				}
				continue
			}
			if len(msg) == 8+8 {
				r.lat = append(r.lat, time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(msg[8:])))))
			}
		}
		done <- r
	}()
	for i := range frames {
		msg := make([]byte, 16)
		binary.BigEndian.PutUint32(msg, uint32(i))
		binary.BigEndian.PutUint32(msg[4:], uint32(960*i))
		binary.BigEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
		if err := websocket.Message.Send(wa, msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := <-done
	if len(r.lat) < frames*99/100 {
		t.Fatalf("bob's page got %d of %d frames", len(r.lat), frames)
	}
	if r.stats == nil || r.stats.FramesReceived < frames*99/100 || r.stats.LossPercent > 1 {
		t.Errorf("stats on bob's socket: %+v", r.stats)
	}
	slices.Sort(r.lat)
	t.Logf("one-way frame time socket to socket through two daemons over loopback QUIC (%d frames): p50 %v, p99 %v, max %v",
		len(r.lat), r.lat[len(r.lat)/2], r.lat[len(r.lat)*99/100], r.lat[len(r.lat)-1])

	out, err := a.cli("calls")
	if err != nil || !strings.Contains(out, "outgoing") || !strings.Contains(out, "bob") || !strings.Contains(out, "active") {
		t.Errorf("tern calls during the call:\n%s (%v)", out, err)
	}
	// Alice's page goes away: that hangs up, on both sides.
	wa.Close()
	waitFor(t, "bob sees the call end", func() bool { return b.callState(rec.ID) == call.StateEnded })
	if got := a.callState(rec.ID); got != call.StateEnded {
		t.Errorf("alice's call is %q after her page closed its socket", got)
	}
	var m api.MediaMessage
	wb.SetReadDeadline(time.Now().Add(5 * time.Second))
	for m.Call == nil || m.Call.State != call.StateEnded {
		var msg string
		if err := websocket.Message.Receive(wb, &msg); err != nil {
			t.Fatalf("bob's socket closed before telling the call ended: %v", err)
		}
		m = api.MediaMessage{}
		json.Unmarshal([]byte(msg), &m)
	}
	if !strings.Contains(m.Call.Reason, "alice hung up") {
		t.Errorf("bob's socket says the call ended with %q", m.Call.Reason)
	}
}

// TestMissedCallSurvivesAnOutage: alice calls while bob's node is down.
// The call cannot start (no internet or LAN path) and alice is told so;
// the missed-call notice waits in her store as a bundle, and when bob's
// node comes back, bob's history shows the missed call.
func TestMissedCallSurvivesAnOutage(t *testing.T) {
	a := startDaemon(t, "alice")
	b := startDaemon(t, "bob")
	a.addContact(b)
	b.addContact(a)
	a.addPeer(b)
	waitFor(t, "alice and bob have live routes", func() bool { return a.hasRoute(b) && b.hasRoute(a) })
	b.stop()
	waitFor(t, "alice notices bob is gone", func() bool { return !a.hasRoute(b) })
	err := a.c.Do(t.Context(), "POST", "/v1/calls", api.StartCall{To: "bob"}, nil)
	if err == nil || !strings.Contains(err.Error(), "bob cannot be reached over the internet or a LAN right now") || !strings.Contains(err.Error(), "bob will see a missed call") {
		t.Fatalf("calling bob while his node is down: %v", err)
	}
	b.start()
	waitFor(t, "bob's node records the missed call", func() bool {
		recs := b.calls()
		return len(recs) == 1 && recs[0].State == call.StateMissed && strings.Contains(recs[0].Reason, "alice tried to call")
	})
	out, err := b.cli("calls", "--peer", "alice")
	if err != nil || !strings.Contains(out, "missed") || !strings.Contains(out, "incoming") {
		t.Errorf("tern calls on bob's node:\n%s (%v)", out, err)
	}
}
