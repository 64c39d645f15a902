package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ternmesh/tern/files"
	"github.com/ternmesh/tern/node"
)

// addStranger adds the card of another node as contact "bob".
func addStranger(t *testing.T, h interface {
	ServeHTTP(w http.ResponseWriter, r *http.Request)
}) {
	t.Helper()
	other, err := node.Open(node.Config{DataDir: t.TempDir(), Name: "bob", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	body, _ := json.Marshal(AddContact{URI: other.Card().URI(), Name: "bob"})
	if rec := do(h, "POST", "/v1/contacts", string(body)); rec.Code != 200 {
		t.Fatalf("adding bob: %d %s", rec.Code, rec.Body.String())
	}
}

func TestFileEndpoints(t *testing.T) {
	h := testHandler(t)
	addStranger(t, h)
	dir := t.TempDir()
	src := filepath.Join(dir, "plan.txt")
	os.WriteFile(src, []byte("meet at the bridge"), 0o600)
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/v1/files", js(SendFile{To: "bob", Path: "plan.txt"}), "not absolute"},
		{"POST", "/v1/files", js(SendFile{To: "bob", Path: filepath.Join(dir, "nope")}), "cannot read"},
		{"POST", "/v1/files", js(SendFile{To: "bob", Path: dir}), "is a directory"},
		{"POST", "/v1/files", js(SendFile{To: "bob", Path: "/dev/zero"}), "not a regular file"},
		{"POST", "/v1/files", js(SendFile{To: "carol", Path: src}), "no contact"},
		{"GET", "/v1/files/0123", "", "not a transfer ID"},
		{"GET", "/v1/files/00000000000000000000000000000000/content", "", "no such transfer"},
		{"GET", "/v1/files/estimate?to=bob&size=lots", "", "not a byte count"},
	} {
		rec := do(h, c.method, c.path, c.body)
		if rec.Code/100 != 4 || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s %s %s: %d %s, want 4xx with %q", c.method, c.path, c.body, rec.Code, rec.Body.String(), c.want)
		}
	}
	if rec := do(h, "GET", "/v1/files/00000000000000000000000000000000", ""); rec.Code != 404 {
		t.Errorf("unknown transfer: %d, want 404", rec.Code)
	}

	// By path, as the CLI does.
	var byPath files.Transfer
	rec := do(h, "POST", "/v1/files", js(SendFile{To: "bob", Path: src}))
	if json.Unmarshal(rec.Body.Bytes(), &byPath); rec.Code != 200 || byPath.Name != "plan.txt" || byPath.Size != 18 || byPath.Mime != "text/plain; charset=utf-8" {
		t.Fatalf("send by path: %d %s", rec.Code, rec.Body.String())
	}
	// Streamed, as the web UI does; the name is cleaned.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("to", "bob")
	fw, _ := mw.CreateFormFile("file", `C:\photos\roof.jpg`)
	fw.Write(bytes.Repeat([]byte{0xff}, 100_000))
	mw.Close()
	req := httptest.NewRequest("POST", "/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var up files.Transfer
	if json.Unmarshal(w.Body.Bytes(), &up); w.Code != 200 || up.Name != "roof.jpg" || up.Size != 100_000 || up.State != files.StateQueued || up.Chunks != 3 {
		t.Fatalf("upload: %d %s", w.Code, w.Body.String())
	}
	var list []files.Transfer
	json.Unmarshal(do(h, "GET", "/v1/files?peer=bob", "").Body.Bytes(), &list)
	if len(list) != 2 {
		t.Errorf("GET /v1/files?peer=bob lists %d transfers, want 2", len(list))
	}
	if rec := do(h, "GET", "/v1/files/"+up.ID+"/content", ""); rec.Code != 400 || !strings.Contains(rec.Body.String(), "sends") {
		t.Errorf("downloading an outgoing file: %d %s", rec.Code, rec.Body.String())
	}
	var est Estimate
	if rec := do(h, "GET", "/v1/files/estimate?to=bob&size=1000000", ""); json.Unmarshal(rec.Body.Bytes(), &est) != nil || est.Held {
		t.Errorf("estimate with no path at all: %s, want not held (it simply waits)", rec.Body.String())
	}
	var cancelled files.Transfer
	if rec := do(h, "DELETE", "/v1/files/"+up.ID, ""); json.Unmarshal(rec.Body.Bytes(), &cancelled) != nil || cancelled.State != files.StateCancelled {
		t.Errorf("cancel: %s", rec.Body.String())
	}
	// A multipart upload without the file part.
	body.Reset()
	mw = multipart.NewWriter(&body)
	mw.WriteField("to", "bob")
	mw.Close()
	req = httptest.NewRequest("POST", "/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 400 || !strings.Contains(w.Body.String(), `no part named \"file\"`) {
		t.Errorf("upload without a file: %d %s", w.Code, w.Body.String())
	}
}

// TestGroupFileEndpoints: POST /v1/files to a group (by name, or its ID
// in an upload) sends to its members and answers with the batch; the
// group's files are listed under the group, not in the 1:1 with the
// member; a group with no one else, and a contact's name, are handled as
// for messages.
func TestGroupFileEndpoints(t *testing.T) {
	h := testHandler(t)
	addStranger(t, h)
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	var g struct{ ID string }
	if rec := do(h, "POST", "/v1/groups", js(CreateGroup{Name: "Trip", Members: []string{"bob"}})); json.Unmarshal(rec.Body.Bytes(), &g) != nil || g.ID == "" {
		t.Fatalf("creating the group: %d %s", rec.Code, rec.Body.String())
	}
	do(h, "POST", "/v1/groups", js(CreateGroup{Name: "Alone"}))
	src := filepath.Join(t.TempDir(), "route.gpx")
	os.WriteFile(src, []byte("<gpx/>"), 0o600)

	var bt files.Batch
	rec := do(h, "POST", "/v1/files", js(SendFile{To: "trip", Path: src}))
	if json.Unmarshal(rec.Body.Bytes(), &bt); rec.Code != 200 || bt.ID == "" || bt.Group != g.ID || bt.GroupName != "Trip" ||
		bt.Members != 1 || len(bt.Transfers) != 1 || bt.Total != 6 || bt.State != files.StateQueued || bt.Name != "route.gpx" {
		t.Fatalf("send to the group by name: %d %s", rec.Code, rec.Body.String())
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("to", g.ID)
	fw, _ := mw.CreateFormFile("file", "photo.jpg")
	fw.Write([]byte{0xff, 0xd8})
	mw.Close()
	req := httptest.NewRequest("POST", "/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if json.Unmarshal(w.Body.Bytes(), &bt); w.Code != 200 || bt.Group != g.ID || len(bt.Transfers) != 1 || bt.Transfers[0].Mime != "image/jpeg" {
		t.Fatalf("upload to the group by ID: %d %s", w.Code, w.Body.String())
	}
	var list []files.Transfer
	json.Unmarshal(do(h, "GET", "/v1/files?peer=Trip", "").Body.Bytes(), &list)
	if len(list) != 2 || list[0].Group != g.ID || list[0].Batch == list[1].Batch {
		t.Errorf("GET /v1/files?peer=Trip: %+v, want the two group files, two batches", list)
	}
	json.Unmarshal(do(h, "GET", "/v1/files?peer=bob", "").Body.Bytes(), &list)
	if len(list) != 0 {
		t.Errorf("the 1:1 with bob lists the group's files: %+v", list)
	}
	var est Estimate
	if rec := do(h, "GET", "/v1/files/estimate?to=Trip&size=1000", ""); json.Unmarshal(rec.Body.Bytes(), &est) != nil || est.Held {
		t.Errorf("estimate for the group: %d %s", rec.Code, rec.Body.String())
	}
	for _, c := range []struct{ to, want string }{
		{"Alone", "no other members"},
		{"Tr", "no contact"}, // too short for an ID prefix, and no such name
	} {
		if rec := do(h, "POST", "/v1/files", js(SendFile{To: c.to, Path: src})); rec.Code != 400 || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("send to %q: %d %s, want 400 with %q", c.to, rec.Code, rec.Body.String(), c.want)
		}
	}
	// A contact called like the group wins, as for messages.
	do(h, "POST", "/v1/groups", js(CreateGroup{Name: "bob", Members: []string{"bob"}}))
	var one files.Transfer
	if rec := do(h, "POST", "/v1/files", js(SendFile{To: "bob", Path: src})); json.Unmarshal(rec.Body.Bytes(), &one) != nil || one.ID == "" || one.Group != "" {
		t.Errorf("send to \"bob\", a contact and a group: %s, want a 1:1 transfer", rec.Body.String())
	}
}
