package files

import "sort"

// Range is the chunks Start..End-1.
type Range struct {
	Start uint32 `json:"start"`
	End   uint32 `json:"end"` // exclusive
}

// Set is a set of chunk indexes as sorted, disjoint, non-adjacent ranges.
// The zero value is empty. Methods that change a Set return the new one.
type Set []Range

// Has reports whether i is in s.
func (s Set) Has(i uint32) bool {
	k := sort.Search(len(s), func(k int) bool { return s[k].End > i })
	return k < len(s) && s[k].Start <= i
}

// Add returns s with i in it.
func (s Set) Add(i uint32) Set {
	return s.Union(Set{{Start: i, End: i + 1}})
}

// Union returns the chunks in s or t.
func (s Set) Union(t Set) Set {
	if len(t) == 0 {
		return s
	}
	all := make([]Range, 0, len(s)+len(t))
	all = append(all, s...)
	all = append(all, t...)
	sort.Slice(all, func(a, b int) bool { return all[a].Start < all[b].Start })
	out := Set{all[0]}
	for _, r := range all[1:] {
		last := &out[len(out)-1]
		if r.Start <= last.End {
			last.End = max(last.End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Count is the number of chunks in s.
func (s Set) Count() uint64 {
	var n uint64
	for _, r := range s {
		n += uint64(r.End - r.Start)
	}
	return n
}

// Within reports whether every chunk of s is below n.
func (s Set) Within(n uint32) bool { return len(s) == 0 || s[len(s)-1].End <= n }

// Bytes is how many bytes of a file of size bytes in chunks of chunk bytes
// the chunks in s hold (the last chunk may be short).
func (s Set) Bytes(size uint64, chunk uint32) uint64 {
	n := s.Count() * uint64(chunk)
	last := chunkCount(size, chunk)
	if last > 0 && s.Has(uint32(last-1)) {
		n -= uint64(chunk) - (size - (last-1)*uint64(chunk))
	}
	return n
}
