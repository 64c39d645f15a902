package api

// Endpoints of the file application (package files):
//
//	POST   /v1/files                 send a file: JSON {to, path, name?, mime?, over_radio?}
//	                                 (the daemon reads path: the CLI's way), or
//	                                 multipart/form-data with fields to, over_radio and
//	                                 the part "file" (the web UI's upload, streamed to disk)
//	GET    /v1/files?peer=X          transfers, oldest first: progress, state, direction
//	GET    /v1/files/{id}            one transfer
//	GET    /v1/files/{id}/content    the received file (download)
//	DELETE /v1/files/{id}            cancel a transfer under way, or forget a finished one
//	POST   /v1/files/{id}/over-radio let a transfer held off radio cross radio links
//	GET    /v1/files/estimate?to=X&size=N  whether a file that size would be held off
//	                                 radio now, and the airtime it would take there
//
// A to or peer may name a group (its ID, an ID prefix or its name) where no
// contact has that name, as for /v1/messages: POST then sends the file to
// every current member but this node, one transfer each, and answers with
// the files.Batch that sums them ({batch, members, delivered, bytes,
// total, state, transfers}); GET ?peer= lists the group's files (sent to
// it, or received from a member of it).
// Progress also arrives on GET /v1/events as {"type":"file","file":{...}}.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/files"
)

// SendFile is the JSON body of POST /v1/files.
type SendFile struct {
	To   string `json:"to"`
	Path string `json:"path"` // absolute path the daemon can read
	Name string `json:"name,omitempty"`
	Mime string `json:"mime,omitempty"`
	// OverRadio lets the chunks cross radio links (held off them otherwise).
	OverRadio bool `json:"over_radio,omitempty"`
}

// Estimate is the answer of GET /v1/files/estimate.
type Estimate struct {
	// Held is true when the only path to the recipient now is a radio
	// link, so a file would wait unless sent with over_radio.
	Held bool `json:"held"`
	// AirtimeMillis is about how long the file would occupy that radio.
	AirtimeMillis int64  `json:"airtime_ms"`
	Note          string `json:"note,omitempty"`
}

func (s *server) registerFiles(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/files", s.sendFile)
	mux.HandleFunc("GET /v1/files", s.listFiles)
	mux.HandleFunc("GET /v1/files/estimate", s.estimateFile)
	mux.HandleFunc("GET /v1/files/{id}", s.getFile)
	mux.HandleFunc("GET /v1/files/{id}/content", s.fileContent)
	mux.HandleFunc("DELETE /v1/files/{id}", s.cancelFile)
	mux.HandleFunc("POST /v1/files/{id}/over-radio", s.fileOverRadio)
}

// recipient resolves a contact name or address.
func (s *server) recipient(who string) (crypto.Address, error) {
	if who == "" {
		return crypto.Address{}, errors.New("no recipient: give a contact name or address in to")
	}
	c, _, err := s.n.Chat().Resolve(who)
	if err != nil {
		return crypto.Address{}, err
	}
	return crypto.ParseAddress(c.Address)
}

func (s *server) sendFile(w http.ResponseWriter, r *http.Request) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		s.uploadFile(w, r)
		return
	}
	var req SendFile
	if !decode(w, r, &req) {
		return
	}
	to, err := s.fileTarget(req.To)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if !filepath.IsAbs(req.Path) {
		fail(w, http.StatusBadRequest, fmt.Errorf("path %q is not absolute: the daemon reads the file itself, give its full path", req.Path))
		return
	}
	f, err := os.Open(req.Path)
	if err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("the daemon cannot read %s: %w", req.Path, err))
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		fail(w, http.StatusBadRequest, fmt.Errorf("%s is a directory: send one file at a time (or an archive of the directory)", req.Path))
		return
	} else if err != nil || !st.Mode().IsRegular() {
		fail(w, http.StatusBadRequest, fmt.Errorf("%s is not a regular file (a device, a pipe?): send a file", req.Path))
		return
	}
	name := req.Name
	if name == "" {
		name = filepath.Base(req.Path)
	}
	mt := req.Mime
	if mt == "" {
		mt = mime.TypeByExtension(filepath.Ext(name))
	}
	s.startSend(w, to, name, f, files.SendOptions{Mime: mt, OverRadio: req.OverRadio})
}

// uploadFile streams a multipart upload: the fields to and over_radio must
// come before the part "file".
func (s *server) uploadFile(w http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("reading the upload: %w", err))
		return
	}
	fields := map[string]string{}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			fail(w, http.StatusBadRequest, errors.New("the upload has no part named \"file\""))
			return
		}
		if err != nil {
			fail(w, http.StatusBadRequest, fmt.Errorf("reading the upload: %w", err))
			return
		}
		if p.FormName() != "file" {
			v, _ := io.ReadAll(io.LimitReader(p, 4096))
			fields[p.FormName()] = string(v)
			continue
		}
		to, err := s.fileTarget(fields["to"])
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		mt := p.Header.Get("Content-Type")
		if mt == "application/octet-stream" {
			mt = ""
		}
		if mt == "" {
			mt = mime.TypeByExtension(filepath.Ext(p.FileName()))
		}
		s.startSend(w, to, p.FileName(), p, files.SendOptions{Mime: mt, OverRadio: fields["over_radio"] == "true"})
		return
	}
}

// target is who a file goes to: one contact, or the members of a group.
type target struct {
	to    crypto.Address
	group string
}

// fileTarget resolves to: a contact first, then a group.
func (s *server) fileTarget(to string) (target, error) {
	if to != "" && s.isGroup(to) {
		return target{group: to}, nil
	}
	addr, err := s.recipient(to)
	return target{to: addr}, err
}

func (s *server) startSend(w http.ResponseWriter, to target, name string, src io.Reader, opt files.SendOptions) {
	if to.group != "" {
		ts, err := s.n.SendGroupFile(to.group, name, src, opt)
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		reply(w, http.StatusOK, files.Combine(ts))
		return
	}
	ts, err := s.n.Files().Send([]crypto.Address{to.to}, name, src, opt)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, ts[0])
}

func (s *server) listFiles(w http.ResponseWriter, r *http.Request) {
	all := s.n.Files().List()
	peer := r.URL.Query().Get("peer")
	if peer == "" {
		reply(w, http.StatusOK, all)
		return
	}
	out := []files.Transfer{}
	if s.isGroup(peer) {
		g, err := s.n.Groups().Get(peer)
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		for _, t := range all {
			if t.Group == g.ID {
				out = append(out, t)
			}
		}
		reply(w, http.StatusOK, out)
		return
	}
	addr, err := s.recipient(peer)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	for _, t := range all {
		if t.Peer == addr.String() && t.Group == "" {
			out = append(out, t)
		}
	}
	reply(w, http.StatusOK, out)
}

func fileError(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	if errors.Is(err, files.ErrNotFound) {
		code = http.StatusNotFound
	}
	fail(w, code, err)
}

func (s *server) getFile(w http.ResponseWriter, r *http.Request) {
	t, err := s.n.Files().Get(r.PathValue("id"))
	if err != nil {
		fileError(w, err)
		return
	}
	reply(w, http.StatusOK, t)
}

func (s *server) fileContent(w http.ResponseWriter, r *http.Request) {
	f, t, err := s.n.Files().Open(r.PathValue("id"))
	if err != nil {
		fileError(w, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	// Always a download, never a page of this origin: a received file
	// could be HTML written to look like the UI.
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(t.Name))
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func (s *server) cancelFile(w http.ResponseWriter, r *http.Request) {
	t, err := s.n.Files().Cancel(r.PathValue("id"))
	if err != nil {
		fileError(w, err)
		return
	}
	reply(w, http.StatusOK, t)
}

func (s *server) fileOverRadio(w http.ResponseWriter, r *http.Request) {
	t, err := s.n.Files().SetOverRadio(r.PathValue("id"))
	if err != nil {
		fileError(w, err)
		return
	}
	reply(w, http.StatusOK, t)
}

// estimateFile answers for one contact, or for a group's members
// together: held if any member's copy would be, with the airtime of all
// the copies held.
func (s *server) estimateFile(w http.ResponseWriter, r *http.Request) {
	to, err := s.fileTarget(r.URL.Query().Get("to"))
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	size, err := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	if err != nil || size < 0 {
		fail(w, http.StatusBadRequest, fmt.Errorf("size %q is not a byte count", r.URL.Query().Get("size")))
		return
	}
	dests := []crypto.Address{to.to}
	if to.group != "" {
		aud, err := s.n.Groups().Audience(to.group)
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		dests = aud.Members
	}
	var est Estimate
	for _, d := range dests {
		held, air := s.n.Router().BulkAirtime(bundle.Addr(d), size)
		if held {
			est.Held = true
			est.AirtimeMillis += air.Milliseconds()
		}
		if est.Note == "" {
			est.Note = s.n.Router().BulkProblem(bundle.Addr(d), size)
		}
	}
	reply(w, http.StatusOK, est)
}

// eventStream merges the applications' events for GET /v1/events.
func (s *server) eventStream(ctx context.Context) <-chan any {
	out := make(chan any, 64)
	chatEv, fileEv := s.n.Chat().Subscribe(ctx), s.n.Files().Subscribe(ctx)
	go func() {
		defer close(out)
		for chatEv != nil || fileEv != nil {
			var e any
			select {
			case ce, ok := <-chatEv:
				if !ok {
					chatEv = nil
					continue
				}
				e = ce
			case fe, ok := <-fileEv:
				if !ok {
					fileEv = nil
					continue
				}
				e = fe
			}
			select {
			case out <- e:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

// Download copies the body of a GET to w.
func (c *Client) Download(ctx context.Context, path string, w io.Writer) (int64, error) {
	resp, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// FileEvents calls fn for each file event until ctx ends or the daemon
// goes away.
func (c *Client) FileEvents(ctx context.Context, fn func(files.Event)) error {
	resp, err := c.request(ctx, http.MethodGet, "/v1/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"type":"file"`) {
			continue
		}
		var e files.Event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Type == "file" {
			fn(e)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("the daemon closed the event stream")
}
