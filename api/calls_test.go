package api

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/ternmesh/tern/call"
	"github.com/ternmesh/tern/node"
)

// TestCallRequestsExplained: the call endpoints answer mistakes with the
// status and the words a user needs; a contact with no internet or LAN
// path is refused with 409 and the reason, and the attempt is in the history.
func TestCallRequestsExplained(t *testing.T) {
	n, err := node.Open(node.Config{DataDir: t.TempDir(), Name: "alice", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(node.Links{}, nil); err != nil {
		t.Fatal(err)
	}
	bob, err := node.Open(node.Config{DataDir: t.TempDir(), Name: "bob", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	n.Chat().AddContact(bob.Card(), "")
	bob.Close()
	h := Handler(n, slog.New(slog.DiscardHandler))
	cases := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/calls", `{"to":"nobody"}`, 400, "no contact"},
		{"POST", "/v1/calls", `{"who":"bob"}`, 400, "unknown field"},
		{"POST", "/v1/calls", `{"to":"bob"}`, 409, "bob cannot be reached over the internet or a LAN right now"},
		{"GET", "/v1/calls/xyz", "", 400, "not 32 hex"},
		{"GET", "/v1/calls/" + strings.Repeat("ab", 16), "", 404, "no such call"},
		{"POST", "/v1/calls/" + strings.Repeat("ab", 16) + "/accept", "", 404, "no such call"},
		{"POST", "/v1/calls/" + strings.Repeat("ab", 16) + "/explode", "", 404, "use accept, decline or hangup"},
		{"GET", "/v1/calls/" + strings.Repeat("ab", 16) + "/media", "", 404, "no such call"},
	}
	for _, c := range cases {
		rec := do(h, c.method, c.path, c.body)
		var e Error
		json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != c.code || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s %s: %d %q, want %d containing %q", c.method, c.path, c.body, rec.Code, e.Error, c.code, c.want)
		}
	}
	var hist []call.Record
	json.Unmarshal(do(h, "GET", "/v1/calls?peer=bob", "").Body.Bytes(), &hist)
	if len(hist) != 1 || hist[0].State != call.StateEnded || !strings.Contains(hist[0].Reason, "will see a missed call") {
		t.Errorf("history after the refused call: %+v", hist)
	}
}
