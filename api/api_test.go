package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ternmesh/tern/node"
)

func testHandler(tb testing.TB) http.Handler {
	tb.Helper()
	n, err := node.Open(node.Config{DataDir: tb.TempDir(), Name: "api-test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.Start(node.Links{}, nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return Handler(n, slog.New(slog.DiscardHandler))
}

func do(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestBadRequestsExplained(t *testing.T) {
	h := testHandler(t)
	cases := []struct {
		method, path, body, want string
	}{
		{"POST", "/v1/contacts", `{"uri":"tern:AAAA"}`, "contact card"},
		{"POST", "/v1/contacts", `{"uri":"https://example.org"}`, "contact card"},
		{"POST", "/v1/contacts", `{"url":"x"}`, "unknown field"},
		{"POST", "/v1/messages", `{"to":"nobody","text":"hi"}`, "tern contact add"},
		{"POST", "/v1/messages", `not json`, "bad request body"},
		{"POST", "/v1/peers", `{"url":"nonsense"}`, "not a URL like quic://host:port"},
		{"POST", "/v1/peers", `{"url":"carrier-pigeon://coop"}`, "unknown scheme"},
		{"GET", "/v1/sas?contact=ghost", "", "no contact"},
	}
	for _, c := range cases {
		rec := do(h, c.method, c.path, c.body)
		var e Error
		json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code/100 != 4 || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s %s: %d %q, want 4xx containing %q", c.method, c.path, c.body, rec.Code, e.Error, c.want)
		}
	}
	if rec := do(h, "GET", "/metrics", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), "tern_bundles_in_total 0") {
		t.Errorf("/metrics: %d\n%s", rec.Code, rec.Body.String())
	}
}

func TestOwnCardCannotBeAContact(t *testing.T) {
	h := testHandler(t)
	var id ID
	json.Unmarshal(do(h, "GET", "/v1/id", "").Body.Bytes(), &id)
	if !strings.HasPrefix(id.QRURI, "tern:") || len(id.QRURI) > 2000 {
		t.Errorf("QR form of the card: %d characters", len(id.QRURI))
	}
	body, _ := json.Marshal(AddContact{URI: id.URI})
	if rec := do(h, "POST", "/v1/contacts", string(body)); rec.Code != 400 || !strings.Contains(rec.Body.String(), "own card") {
		t.Errorf("adding one's own card: %d %s", rec.Code, rec.Body.String())
	}
}

// FuzzRequests throws arbitrary bodies and queries at every endpoint that
// reads input: the daemon must answer (any status) and never panic.
func FuzzRequests(f *testing.F) {
	h := testHandler(f)
	f.Add(uint8(0), `{"uri":"tern:AAAA","name":"x"}`, "")
	f.Add(uint8(1), `{"to":"bob","text":"hi"}`, "")
	f.Add(uint8(2), `{"url":"quic://127.0.0.1:1?id=zz"}`, "")
	f.Add(uint8(3), "", "contact=%ff")
	f.Add(uint8(4), "", "peer=x&limit=-1")
	f.Add(uint8(5), "", "url=%00")
	f.Add(uint8(7), `{"to":"bob","path":"/dev/zero"}`, "")
	f.Add(uint8(8), "", "peer=%zz")
	f.Add(uint8(9), "", "to=bob&size=-1")
	f.Fuzz(func(t *testing.T, which uint8, body, query string) {
		routes := []struct{ method, path string }{
			{"POST", "/v1/contacts"}, {"POST", "/v1/messages"}, {"POST", "/v1/peers"},
			{"GET", "/v1/sas"}, {"GET", "/v1/messages"}, {"DELETE", "/v1/peers"}, {"GET", "/v1/bundles"},
			{"POST", "/v1/files"}, {"GET", "/v1/files"}, {"GET", "/v1/files/estimate"},
		}
		r := routes[int(which)%len(routes)]
		req, err := http.NewRequest(r.method, "http://tern"+r.path, bytes.NewReader([]byte(body)))
		if err != nil {
			return
		}
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && r.method != "DELETE" {
			t.Fatalf("%s %s?%s %q: %d %s", r.method, r.path, query, body, rec.Code, rec.Body.String())
		}
	})
}

// TestRenameReachesTheSharedCard: a name chosen in the web UI is on the
// card that /v1/id (and so `tern id`) shares from then on.
func TestRenameReachesTheSharedCard(t *testing.T) {
	n, err := node.Open(node.Config{DataDir: t.TempDir(), Name: "old", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(node.Links{}, nil); err != nil {
		t.Fatal(err)
	}
	h := WebHandler(n, NewProfile(n, false, nil), slog.New(slog.DiscardHandler))
	if rec := do(h, "PUT", "/v1/profile", `{"name":"Ada at the mast"}`); rec.Code != 200 {
		t.Fatalf("rename: %d %s", rec.Code, rec.Body.String())
	}
	var id ID
	json.Unmarshal(do(h, "GET", "/v1/id", "").Body.Bytes(), &id)
	if id.Name != "Ada at the mast" {
		t.Errorf("/v1/id names %q after the rename", id.Name)
	}
}
