package api

// Voice-call endpoints (package call). Handler serves them; the web UI
// reaches them behind its access token.
//
//	GET  /v1/calls?peer=X&limit=N   call history, oldest first (the call in progress included)
//	POST /v1/calls {to}             call a contact; 409 with the reason when voice cannot reach them
//	GET  /v1/calls/events           newline-delimited JSON call events (the call in progress first)
//	GET  /v1/calls/{id}             {call, stats}: the record, and live figures while in progress
//	POST /v1/calls/{id}/accept      answer a ringing call (409 with the reason if voice cannot go)
//	POST /v1/calls/{id}/decline     refuse a ringing call
//	POST /v1/calls/{id}/hangup      end (or cancel) a call
//	GET  /v1/calls/{id}/media       WebSocket, subprotocol "tern.media.v1": the call's audio
//
// The media socket carries the browser's Opus frames to its own daemon and
// the peer's back, in the clear (it is loopback, behind the access token);
// the daemon encrypts them for the network. Binary messages, both ways:
//
//	0  4  sequence number (big endian; the daemon's own numbering on the way
//	      to the browser, where gaps are losses; ignored on the way in)
//	4  4  capture timestamp, 48 kHz ticks
//	8  n  one 20 ms Opus frame (at most call.MaxOpus bytes)
//
// Text messages from the daemon are JSON: {"type":"state","call":Record}
// when the call changes, {"type":"stats","stats":Stats} twice a second.
// Closing the socket hangs up the call.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/websocket"

	"github.com/ternmesh/tern/call"
)

// MediaProtocol is the WebSocket subprotocol of the media socket.
const MediaProtocol = "tern.media.v1"

// StartCall is the body of POST /v1/calls.
type StartCall struct {
	To string `json:"to"`
}

// CallInfo is the answer of GET /v1/calls/{id}.
type CallInfo struct {
	Call  call.Record `json:"call"`
	Stats *call.Stats `json:"stats,omitempty"`
}

// MediaMessage is a text message on the media socket.
type MediaMessage struct {
	Type  string       `json:"type"` // "state" or "stats"
	Call  *call.Record `json:"call,omitempty"`
	Stats *call.Stats  `json:"stats,omitempty"`
}

func (s *server) callRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/calls", s.calls)
	mux.HandleFunc("POST /v1/calls", s.startCall)
	mux.HandleFunc("GET /v1/calls/events", s.callEvents)
	mux.HandleFunc("GET /v1/calls/{id}", s.callInfo)
	mux.HandleFunc("POST /v1/calls/{id}/{action}", s.callAction)
	mux.HandleFunc("GET /v1/calls/{id}/media", s.callMedia)
}

// callError maps the call package's errors to status codes.
func callError(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, call.ErrVoiceUnavailable), errors.Is(err, call.ErrInCall):
		code = http.StatusConflict
	case errors.Is(err, call.ErrNoCall):
		code = http.StatusNotFound
	}
	fail(w, code, err)
}

func (s *server) calls(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	recs, err := s.n.Calls().History(r.URL.Query().Get("peer"), limit)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if recs == nil {
		recs = []call.Record{}
	}
	reply(w, http.StatusOK, recs)
}

func (s *server) startCall(w http.ResponseWriter, r *http.Request) {
	var req StartCall
	if !decode(w, r, &req) {
		return
	}
	rec, err := s.n.Calls().Start(req.To)
	if err != nil {
		callError(w, err)
		return
	}
	reply(w, http.StatusOK, rec)
}

func pathID(w http.ResponseWriter, r *http.Request) (call.ID, bool) {
	id, err := call.ParseID(r.PathValue("id"))
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return id, false
	}
	return id, true
}

func (s *server) callInfo(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	rec, err := s.n.Calls().Get(id)
	if err != nil {
		callError(w, err)
		return
	}
	info := CallInfo{Call: rec}
	if st, err := s.n.Calls().Stats(id); err == nil {
		info.Stats = &st
	}
	reply(w, http.StatusOK, info)
}

func (s *server) callAction(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var do func(call.ID) (call.Record, error)
	switch r.PathValue("action") {
	case "accept":
		do = s.n.Calls().Accept
	case "decline":
		do = s.n.Calls().Decline
	case "hangup":
		do = s.n.Calls().Hangup
	default:
		fail(w, http.StatusNotFound, fmt.Errorf("no call action %q: use accept, decline or hangup", r.PathValue("action")))
		return
	}
	rec, err := do(id)
	if err != nil {
		callError(w, err)
		return
	}
	reply(w, http.StatusOK, rec)
}

func (s *server) callEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		fail(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	ch := s.n.Calls().Subscribe(r.Context())
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if cur, ok := s.n.Calls().Current(); ok {
		enc.Encode(call.Event{Type: "call", Call: cur})
	}
	fl.Flush()
	for e := range ch {
		if enc.Encode(e) != nil {
			return
		}
		fl.Flush()
	}
}

// mediaHead is the bytes before the Opus frame in a media socket message.
const mediaHead = 8

func (s *server) callMedia(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	calls := s.n.Calls()
	stream, err := calls.Attach(id)
	if err != nil {
		callError(w, err)
		return
	}
	srv := websocket.Server{
		// The web server already refused other sites' origins and
		// requests without the token; the socket speaks one protocol.
		Handshake: func(cfg *websocket.Config, req *http.Request) error {
			cfg.Protocol = []string{MediaProtocol}
			return nil
		},
		Handler: func(ws *websocket.Conn) { s.media(ws, id, stream) },
	}
	srv.ServeHTTP(w, r)
	stream.Close()
}

// media runs one media socket until the call ends or the page closes it.
func (s *server) media(ws *websocket.Conn, id call.ID, stream *call.Stream) {
	ws.MaxPayloadBytes = 4096
	ws.PayloadType = websocket.BinaryFrame
	calls := s.n.Calls()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := calls.Subscribe(ctx)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for {
			var msg []byte
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if len(msg) < mediaHead {
				continue // not a frame
			}
			if err := stream.Send(binary.BigEndian.Uint32(msg[4:8]), msg[mediaHead:]); errors.Is(err, call.ErrEnded) {
				return
			} else if err != nil {
				s.log.Debug("media frame refused", "call", id.String(), "err", err)
			}
		}
	}()
	write := func(v any) bool {
		ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
		return websocket.Message.Send(ws, v) == nil
	}
	writeJSON := func(m MediaMessage) bool {
		b, _ := json.Marshal(m)
		return write(string(b))
	}
	if rec, err := calls.Get(id); err == nil && !writeJSON(MediaMessage{Type: "state", Call: &rec}) {
		return
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 0, mediaHead+call.MaxOpus)
	for {
		select {
		case f := <-stream.Frames():
			buf = binary.BigEndian.AppendUint32(buf[:0], f.Seq)
			buf = binary.BigEndian.AppendUint32(buf, f.Timestamp)
			if !write(append(buf, f.Data...)) {
				return
			}
		case <-tick.C:
			st := stream.Stats()
			if !writeJSON(MediaMessage{Type: "stats", Stats: &st}) {
				return
			}
		case e := <-events:
			if e.Call.ID == id.String() && !writeJSON(MediaMessage{Type: "state", Call: &e.Call}) {
				return
			}
		case <-stream.Done():
			if rec, err := calls.Get(id); err == nil {
				writeJSON(MediaMessage{Type: "state", Call: &rec})
			}
			ws.Close()
			<-closed
			return
		case <-closed:
			// The page closed its socket: that hangs up, unless another
			// socket took over the call.
			select {
			case <-stream.Done():
			default:
				calls.Hangup(id)
			}
			return
		}
	}
}
