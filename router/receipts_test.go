package router

import (
	"testing"

	"github.com/ternmesh/tern/bundle"
)

// TestForgottenReceiptIsNoNews: a node that has learned more receipts than
// its log lists drops the oldest from the list, but one of those heard
// again (from a neighbour's full summary) is not news: it is not listed
// again and goes out in no note. Otherwise, with more receipts alive than
// a log holds, receipts circle between neighbours for ever.
func TestForgottenReceiptIsNoNews(t *testing.T) {
	const max = 4
	l := newReceiptLog(max)
	id := func(i int) bundle.ID { return bundle.ID{byte(i), byte(i >> 8), 0xaa} }
	nbr := bundle.Addr{'n', 1}
	for i := range 3 * max {
		if !l.add(id(i), nbr) {
			t.Fatalf("receipt %d, never heard before, was not news", i)
		}
	}
	if len(l.ents) != max {
		t.Fatalf("the log lists %d receipts, want its bound %d", len(l.ents), max)
	}
	seq := l.seq
	for i := range 3 * max {
		if l.add(id(i), bundle.Addr{'n', 2}) {
			t.Errorf("receipt %d, known (listed or forgotten), was taken as news", i)
		}
	}
	if ids, _ := l.since(seq, bundle.Addr{}, 100); len(ids) != 0 {
		t.Errorf("a note after hearing known receipts again would pass on %d of them", len(ids))
	}
	if !l.add(id(1000), nbr) {
		t.Error("a new receipt after the known ones was not news")
	}
	if ids, _ := l.since(seq, bundle.Addr{}, 100); len(ids) != 1 || ids[0] != id(1000) {
		t.Errorf("the next note would carry %v, want only the new receipt", ids)
	}
}
