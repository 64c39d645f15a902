package api

// Endpoints of group channels and read receipts. A {group} is a group's ID,
// a unique ID prefix, or its name.
//
//	GET    /v1/groups                          the groups this node is (or was) in
//	POST   /v1/groups {name, members}          create a group (members: contact names or addresses)
//	GET    /v1/groups/{group}                  one group: members, epoch, owner, removed
//	POST   /v1/groups/{group}/members {member} add a contact (owner only)
//	DELETE /v1/groups/{group}/members/{member} remove a member (owner only)
//	GET    /v1/groups/{group}/messages?limit=N its messages and notices, oldest first
//	POST   /v1/groups/{group}/messages {text}  write to the group
//	POST   /v1/messages/read {peer, ids}       the user has seen these incoming
//	                                           messages of a conversation (a contact
//	                                           or a group): read receipts go out
//
// POST /v1/messages and GET /v1/messages?peer= also accept a group where
// no contact has that name, and GET /v1/messages without a peer lists the
// groups' messages with the 1:1 ones, so `tern send`, `tern chat` and
// `tern inbox` work for groups too.

import (
	"cmp"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/ternmesh/tern/chat"
)

// CreateGroup is the body of POST /v1/groups.
type CreateGroup struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// AddMember is the body of POST /v1/groups/{group}/members.
type AddMember struct {
	Member string `json:"member"`
}

// GroupSend is the body of POST /v1/groups/{group}/messages.
type GroupSend struct {
	Text string `json:"text"`
}

// MarkRead is the body of POST /v1/messages/read.
type MarkRead struct {
	Peer string   `json:"peer"`
	IDs  []string `json:"ids"`
}

// Marked is the answer of POST /v1/messages/read.
type Marked struct {
	Marked int `json:"marked"` // messages newly marked read (and receipts sent)
}

func registerGroups(mux *http.ServeMux, s *server) {
	mux.HandleFunc("GET /v1/groups", s.listGroups)
	mux.HandleFunc("POST /v1/groups", s.createGroup)
	mux.HandleFunc("GET /v1/groups/{group}", s.getGroup)
	mux.HandleFunc("POST /v1/groups/{group}/members", s.addMember)
	mux.HandleFunc("DELETE /v1/groups/{group}/members/{member}", s.removeMember)
	mux.HandleFunc("GET /v1/groups/{group}/messages", s.groupMessages)
	mux.HandleFunc("POST /v1/groups/{group}/messages", s.groupSend)
	mux.HandleFunc("POST /v1/messages/read", s.markRead)
}

func (s *server) listGroups(w http.ResponseWriter, r *http.Request) {
	gs, err := s.n.Groups().List()
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	reply(w, http.StatusOK, gs)
}

func (s *server) createGroup(w http.ResponseWriter, r *http.Request) {
	var req CreateGroup
	if !decode(w, r, &req) {
		return
	}
	in, err := s.n.Groups().Create(req.Name, req.Members)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, in)
}

func (s *server) getGroup(w http.ResponseWriter, r *http.Request) {
	in, err := s.n.Groups().Get(r.PathValue("group"))
	if err != nil {
		fail(w, http.StatusNotFound, err)
		return
	}
	reply(w, http.StatusOK, in)
}

func (s *server) addMember(w http.ResponseWriter, r *http.Request) {
	var req AddMember
	if !decode(w, r, &req) {
		return
	}
	in, err := s.n.Groups().Add(r.PathValue("group"), req.Member)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, in)
}

func (s *server) removeMember(w http.ResponseWriter, r *http.Request) {
	in, err := s.n.Groups().Remove(r.PathValue("group"), r.PathValue("member"))
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, in)
}

func (s *server) groupMessages(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	recs, err := s.n.Groups().History(r.PathValue("group"), limit)
	if err != nil {
		fail(w, http.StatusNotFound, err)
		return
	}
	reply(w, http.StatusOK, nonNil(recs))
}

func (s *server) groupSend(w http.ResponseWriter, r *http.Request) {
	var req GroupSend
	if !decode(w, r, &req) {
		return
	}
	s.sendToGroup(w, r.PathValue("group"), req.Text, false)
}

func (s *server) sendToGroup(w http.ResponseWriter, g, text string, clear bool) {
	if clear {
		fail(w, http.StatusBadRequest, errors.New("group messages cannot go over-air-clear: a group text is always encrypted with the group's key; write to one contact to send in the clear"))
		return
	}
	rec, err := s.n.Groups().Send(g, text)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, rec)
}

func (s *server) markRead(w http.ResponseWriter, r *http.Request) {
	var req MarkRead
	if !decode(w, r, &req) {
		return
	}
	var n int
	var err error
	if s.isGroup(req.Peer) {
		n, err = s.n.Groups().MarkRead(req.Peer, req.IDs)
	} else {
		n, err = s.n.Chat().MarkRead(req.Peer, req.IDs)
	}
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	reply(w, http.StatusOK, Marked{Marked: n})
}

// isGroup reports whether who names a group rather than a contact: a
// contact's name wins, so `tern send bob` never writes to a group "bob".
func (s *server) isGroup(who string) bool {
	if _, _, err := s.n.Chat().Resolve(who); err == nil {
		return false
	}
	return s.n.Groups().Is(who)
}

// allMessages is the 1:1 history and every group's, by time, the newest
// limit (0: all).
func (s *server) allMessages(limit int) ([]chat.Record, error) {
	recs, err := s.n.Chat().History("", limit)
	if err != nil {
		return nil, err
	}
	gs, err := s.n.Groups().AllHistory(limit)
	if err != nil {
		return nil, err
	}
	recs = append(recs, gs...)
	slices.SortStableFunc(recs, func(a, b chat.Record) int { return cmp.Compare(a.Received, b.Received) })
	if limit > 0 && len(recs) > limit {
		recs = recs[len(recs)-limit:]
	}
	return nonNil(recs), nil
}

func nonNil(recs []chat.Record) []chat.Record {
	if recs == nil {
		return []chat.Record{}
	}
	return recs
}
